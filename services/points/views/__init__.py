"""HTTP API of the points service (mounted at ``/points``) for riders, staff and merchants: one module per URL
area (``/points/tasks/...`` → ``tasks.py``; the signed ``/points/merchant-api/...`` → ``merchant_api.py``).
Thin: parse, authorize, call the use cases, commit once."""

from fastapi import APIRouter

from services.points.views import (
    hazard_reports,
    leaderboards,
    merchant_api,
    merchants,
    offers,
    photos,
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
    photos,
):
    router.include_router(area.router)
