"""The notify service as the platform runs it."""

from pathlib import Path

from minsheng.platform.service import ServiceSpec
from services.notify.demo import seed_demo
from services.notify.handlers import HANDLERS
from services.notify.jobs import JOBS
from services.notify.lifespan import lifespan
from services.notify.metrics import metrics
from services.notify.models import metadata, platform_tables
from services.notify.views import router

SPEC = ServiceSpec(
    name="notify",
    title="Notify 件件有回音",
    description="Tells people what happened: WeChat subscribe messages, SMS, the in-app inbox, WeCom robots.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=JOBS,
    seed_demo=seed_demo,
    lifespan=lifespan,
    metrics=metrics,
)
