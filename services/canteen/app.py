"""The canteen service as the platform runs it."""

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service_layout import service_spec

SPEC = service_spec(
    __name__,
    title="Canteen 幸福食堂",
    description="Elderly canteens: menus, orders, subsidies, settlement, delivery, care signals.",
    sealed=(
        SealedColumns(
            "diners",
            ("id_number_enc", "health_notes_enc", "phone_enc"),
            hashes=(("id_number_hash", "id_number_enc"), ("phone_hash", "phone_enc")),
        ),
        SealedColumns("diner_family", ("phone_enc",), hashes=(("phone_hash", "phone_enc"),)),
    ),
)
