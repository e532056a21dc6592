"""Routes under ``/points/redemptions``: the rider's own redemptions."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.points import redemptions, riders
from services.points.models import RiderRedemptionPublic
from services.points.views.deps import RiderPrincipal

router = APIRouter()


@router.get("/redemptions", tags=["redemption"], summary="Your redemptions, newest first")
async def my_redemptions(uow: UoW, who: RiderPrincipal, page: PageQuery) -> Page[RiderRedemptionPublic]:
    rider = await riders.rider_by_subject(uow, who.sub)
    return await redemptions.rider_redemptions(uow, rider, page=page)
