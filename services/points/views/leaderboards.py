"""Routes under ``/points/leaderboards``: monthly net points by team, community or rider."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from minsheng.platform.auth import Role
from minsheng.platform.service import UoW
from services.points import leaderboards, riders
from services.points.models import Leaderboard, LeaderboardFilters
from services.points.views.deps import RiderOrStaff

router = APIRouter()


@router.get(
    "/leaderboards/{by}",
    tags=["leaderboards"],
    summary="Monthly net points (earned minus reversed) by team, community or rider (names masked)",
)
async def leaderboard(
    by: Literal["team", "community", "rider"],
    uow: UoW,
    who: RiderOrStaff,
    filters: Annotated[LeaderboardFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    rider = await riders.find_rider(uow, who.sub) if who.has(Role.rider) else None
    return await leaderboards.leaderboard(uow, by=by, filters=filters, limit=limit, rider=rider)
