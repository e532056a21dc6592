"""The issues service as the platform runs it."""

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service_layout import service_spec
from minsheng.platform.storage import store_lifespan
from services.issues import open311
from services.issues.client import CLIENT_CONFIG

SPEC = service_spec(
    __name__,
    title="Issues 章贡治理",
    description="Residents report problems and vote; staff dispatch and resolve against deadlines; Open311.",
    lifespan=store_lifespan,
    sealed=(SealedColumns("issues", ("contact_name", "contact_phone")),),
    foreign_error_formats=(("/open311/v2/", open311.refused),),
    client_config=CLIENT_CONFIG,
)
