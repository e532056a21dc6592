"""Routes under ``/points/redemptions``: the rider's own redemptions."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.inputs import Cursor
from minsheng.platform.pagination import DEFAULT_LIMIT, Page
from minsheng.platform.service import UoW
from services.points import redemptions, riders
from services.points.models import RiderRedemptionPublic
from services.points.views.deps import Limit, RiderPrincipal

router = APIRouter()


@router.get("/redemptions", tags=["redemption"], summary="Your redemptions, newest first")
async def my_redemptions(
    uow: UoW, who: RiderPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Page[RiderRedemptionPublic]:
    rider = await riders.rider_by_subject(uow, who.sub)
    return await redemptions.rider_redemptions(uow, rider, limit=limit, cursor=cursor)
