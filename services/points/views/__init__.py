"""HTTP API of the points service (mounted at ``/points``) for riders, staff and merchants: one module per URL
area (``/points/tasks/...`` → ``tasks.py``; the signed ``/points/merchant-api/...`` → ``merchant_api.py``).
Thin: parse, authorize, call the use cases, commit once."""

from fastapi import APIRouter

from minsheng.platform.auth import Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import photos_router
from services.points import config
from services.points.models import Photo
from services.points.views import (
    hazard_reports,
    leaderboards,
    merchant_api,
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
    merchant_api,
):
    router.include_router(area.router)
router.include_router(
    photos_router(
        "points",
        Photo,
        lambda: ImageLimits(max_bytes=config.get().photo_max_bytes),
        lambda who: who.has(Role.rider, Role.staff, Role.admin),
    )
)
