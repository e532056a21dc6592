"""HTTP API of the points service (mounted at ``/points``) for riders and staff: one module per URL area
(``/points/tasks/...`` → ``tasks.py``). Thin: parse, authorize, call the use cases, commit once. The signed
merchant API is in ``services/points/merchant_api.py``."""

from fastapi import APIRouter

from minsheng.platform.auth import Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import photos_router
from services.points import config, merchant_api
from services.points.models import Photo
from services.points.views import (
    hazard_reports,
    leaderboards,
    merchants,
    offers,
    redemption_codes,
    redemptions,
    riders,
    task_types,
    tasks,
    teams,
)

router = APIRouter()
for area in (
    riders,
    teams,
    leaderboards,
    hazard_reports,
    task_types,
    tasks,
    offers,
    redemption_codes,
    redemptions,
    merchants,
):
    router.include_router(area.router)
router.include_router(merchant_api.router)
router.include_router(
    photos_router(
        "points",
        Photo,
        lambda: ImageLimits(max_bytes=config.get().photo_max_bytes),
        lambda who: who.has(Role.rider, Role.staff, Role.admin),
    )
)
