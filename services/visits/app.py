"""The visits service as the platform runs it."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service import ServiceRuntime, ServiceSpec
from minsheng.platform.storage import store_lifespan
from services.visits import linking
from services.visits.demo import seed_demo
from services.visits.handlers import HANDLERS
from services.visits.jobs import jobs
from services.visits.models import metadata, platform_tables
from services.visits.views import router


@contextlib.asynccontextmanager
async def _lifespan(runtime: ServiceRuntime) -> AsyncIterator[None]:
    async with linking.lifespan(runtime), store_lifespan(runtime):
        yield


SPEC = ServiceSpec(
    name="visits",
    title="Visits 入户倾听",
    description="Grid workers' door-to-door rounds, the needs ledger closed one by one, the happiness bill.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=jobs(),
    seed_demo=seed_demo,
    lifespan=_lifespan,
    sealed=(
        SealedColumns(
            "residents",
            ("id_number_enc", "health_notes_enc", "phone_enc"),
            hashes=(("id_number_hash", "id_number_enc"), ("phone_hash", "phone_enc")),
        ),
        SealedColumns("grid_workers", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
        SealedColumns("account_phones", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
    ),
)
