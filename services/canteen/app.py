"""The canteen service as the platform runs it."""

from pathlib import Path

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service import ServiceSpec
from services.canteen.demo import seed_demo
from services.canteen.handlers import HANDLERS
from services.canteen.jobs import JOBS
from services.canteen.models import metadata, platform_tables
from services.canteen.views import router

SPEC = ServiceSpec(
    name="canteen",
    title="Canteen 幸福食堂",
    description="Elderly canteens: menus, orders, subsidies, settlement, delivery, care signals.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=JOBS,
    seed_demo=seed_demo,
    sealed=(
        SealedColumns(
            "diners",
            ("id_number_enc", "health_notes_enc", "phone_enc"),
            hashes=(("id_number_hash", "id_number_enc"), ("phone_hash", "phone_enc")),
        ),
        SealedColumns("diner_family", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
    ),
)
