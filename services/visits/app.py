"""The visits service as the platform runs it."""

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service_layout import service_spec
from minsheng.platform.storage import store_lifespan
from services.visits.jobs import jobs

SPEC = service_spec(
    __name__,
    title="Visits 入户倾听",
    description="Grid workers' door-to-door rounds, the needs ledger closed one by one, the happiness bill.",
    jobs=jobs(),
    lifespan=store_lifespan,
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
