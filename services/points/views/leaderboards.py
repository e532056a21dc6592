"""Routes under ``/points/leaderboards``: monthly net points by team, community or rider."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.inputs import MonthText
from minsheng.platform.service import UoW
from services.points import statements
from services.points.models import CommunityCode, Leaderboard
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
    month: Annotated[MonthText | None, Query(description="YYYY-MM, local; default this month")] = None,
    community: CommunityCode | None = None,
    team_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    return await statements.leaderboard(
        uow, by=by, month=statements.parse_month(month), community=community, team_id=team_id, limit=limit
    )
