"""The notify service as the platform runs it."""

from minsheng.platform.service_layout import service_spec
from services.notify.lifespan import lifespan
from services.notify.metrics import metrics

SPEC = service_spec(
    __name__,
    title="Notify 件件有回音",
    description="Tells people what happened: WeChat subscribe messages, SMS, the in-app inbox, WeCom robots.",
    lifespan=lifespan,
    metrics=metrics,
)
