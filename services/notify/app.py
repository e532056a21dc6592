"""The notify service as the platform runs it."""

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service_layout import service_spec
from services.notify.lifespan import lifespan
from services.notify.metrics import metrics

SPEC = service_spec(
    __name__,
    title="Notify 件件有回音",
    description="Tells people what happened: WeChat subscribe messages, SMS, the in-app inbox, WeCom robots.",
    lifespan=lifespan,
    metrics=metrics,
    # bound to their rows (services.notify.sealing); those sealed before were not, and still read
    sealed=(
        SealedColumns("recipients", ("openid_enc", "phone_enc"), key="account_id", unbound=True),
        SealedColumns("care_contacts", ("phone_enc",), unbound=True),
        SealedColumns("duty_roster", ("phone_enc",), unbound=True),
        # a WeCom robot's delivery holds its scope in clear; a WeChat delivery may carry its SMS fallback's phone
        SealedColumns(
            "deliveries",
            ("address_enc",),
            unbound=True,
            where=lambda t: t.c.channel != "wecom",
            nested=(("request", ("fallback", "address_enc")),),
        ),
    ),
)
