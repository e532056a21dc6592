"""Routes under ``/points/redemption-codes``: the one-time code a rider shows at the counter."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import UoW
from services.points import redemptions, riders
from services.points.models import CodeIssued, CodeRequest
from services.points.views.deps import RiderPrincipal, rider_limit

router = APIRouter()


@router.post(
    "/redemption-codes",
    status_code=201,
    tags=["redemption"],
    summary="A short-lived one-time code (and QR payload) to show at the merchant's counter",
    responses=RATE_LIMITED,
)
async def issue_code(uow: UoW, who: RiderPrincipal, body: CodeRequest | None = None) -> CodeIssued:
    rider = await riders.rider_by_subject(uow, who.sub)
    riders.ensure_verified(rider)
    rider_limit(rider)
    issued = await redemptions.issue_code(uow, rider, body.offer_id if body else None)
    await uow.commit()
    return issued
