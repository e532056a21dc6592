"""The issues service as the platform runs it."""

from pathlib import Path

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service import ServiceSpec
from minsheng.platform.storage import store_lifespan
from services.issues import open311
from services.issues.client import CLIENT_CONFIG
from services.issues.demo import seed_demo
from services.issues.handlers import HANDLERS
from services.issues.jobs import JOBS
from services.issues.models import metadata, platform_tables
from services.issues.views import router

SPEC = ServiceSpec(
    name="issues",
    title="Issues 章贡治理",
    description="Residents report problems and vote; staff dispatch and resolve against deadlines; Open311.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=JOBS,
    seed_demo=seed_demo,
    lifespan=store_lifespan,
    sealed=(SealedColumns("issues", ("contact_name", "contact_phone")),),
    foreign_error_formats=(("/open311/v2/", open311.refused),),
    client_config=CLIENT_CONFIG,
)
