"""The points service as the platform runs it."""

from pathlib import Path

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service import ServiceSpec
from minsheng.platform.storage import store_lifespan
from services.points.demo import seed_demo
from services.points.handlers import HANDLERS
from services.points.jobs import JOBS
from services.points.models import metadata, platform_tables
from services.points.views import router

SPEC = ServiceSpec(
    name="points",
    title="Points 红蓝黄骑士",
    description="Riders report hazards and take governance tasks, earn points, redeem them at alliance merchants.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=JOBS,
    seed_demo=seed_demo,
    lifespan=store_lifespan,
    sealed=(
        SealedColumns("riders", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
        SealedColumns("merchants", ("contact_phone_enc",), hashes=(("contact_phone_hash", "contact_phone_enc"),)),
        SealedColumns("merchant_credentials", ("secret_enc",), key="key_id"),
    ),
)
