"""The points service as the platform runs it."""

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service_layout import service_spec
from minsheng.platform.storage import store_lifespan

SPEC = service_spec(
    __name__,
    title="Points 红蓝黄骑士",
    description="Riders report hazards and take governance tasks, earn points, redeem them at alliance merchants.",
    lifespan=store_lifespan,
    sealed=(
        SealedColumns("riders", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
        SealedColumns("merchants", ("contact_phone_enc",), hashes=(("contact_phone_hash", "contact_phone_enc"),)),
        SealedColumns("merchant_credentials", ("secret_enc",), key="key_id"),
    ),
)
