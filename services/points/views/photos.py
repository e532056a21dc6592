"""``/photos/…``: uploads and reads of the photos riders attach to hazard reports and task proofs (the
platform's photo routes)."""

from minsheng.platform.auth import Principal, Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import photos_router
from services.points import config
from services.points.models import Photo


def _limits() -> ImageLimits:
    return ImageLimits(max_bytes=config.get().photo_max_bytes)


def _may_upload(who: Principal) -> bool:
    return who.has(Role.rider, Role.staff, Role.admin)


router = photos_router("points", Photo, _limits, _may_upload)
