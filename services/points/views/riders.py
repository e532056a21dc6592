"""Routes under ``/points/riders``: registration, the rider's own profile and ledger, staff review of riders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from minsheng.platform.auth import Principal
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import Page, PageQuery, PageRequest
from minsheng.platform.responses import validated_json
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import UoW
from services.points import ledger, riders, statements
from services.points.models import (
    Adjustment,
    BalancePublic,
    LedgerEntryFilters,
    LedgerEntryPublic,
    Reason,
    Rider,
    RiderCreate,
    RiderFilters,
    RiderPublic,
    RiderSelfUpdate,
    RiderStaffUpdate,
    RiderStaffView,
)
from services.points.views.deps import RiderPrincipal, Staff

router = APIRouter()


def _staff_view(rider: Rider) -> RiderStaffView:
    return RiderStaffView.model_validate(rider, from_attributes=True)


@router.post(
    "/riders",
    status_code=201,
    tags=["riders"],
    summary="Register the calling account as a rider (staff verify it before tasks and redemption)",
)
async def register_rider(body: RiderCreate, uow: UoW, who: RiderPrincipal, cipher: Cipher) -> RiderPublic:
    rider = await riders.register_rider(uow, who.sub, body, cipher)
    await uow.commit()
    return RiderPublic.model_validate(rider, from_attributes=True)


@router.get("/riders/me", tags=["riders"])
async def my_profile(uow: UoW, who: RiderPrincipal) -> RiderPublic:
    return RiderPublic.model_validate(await riders.rider_by_subject(uow, who.sub), from_attributes=True)


@router.patch("/riders/me", tags=["riders"], summary="Change your name, platform or phone")
async def update_profile(body: RiderSelfUpdate, uow: UoW, who: RiderPrincipal, cipher: Cipher) -> RiderPublic:
    rider = await riders.update_self(uow, await riders.rider_by_subject(uow, who.sub), body, cipher)
    await uow.commit()
    return RiderPublic.model_validate(rider, from_attributes=True)


@router.get(
    "/riders/me/balance",
    response_model=BalancePublic,
    tags=["ledger"],
    summary="Your balance, what expires soon, and today's earnings against the daily cap",
)
async def my_balance(uow: UoW, who: RiderPrincipal) -> Response:
    return validated_json(await ledger.balance_of_subject(uow, who.sub))


@router.get("/riders/me/statement", tags=["ledger"], summary="Your ledger entries, newest first")
async def my_statement(
    uow: UoW,
    who: RiderPrincipal,
    page: PageQuery,
    filters: Annotated[LedgerEntryFilters, Query()],
) -> Page[LedgerEntryPublic]:
    rider = await riders.rider_by_subject(uow, who.sub)
    return await _statement(uow, rider.id, page, filters)


async def _statement(
    uow: UoW,
    rider_id: UUID,
    page: PageRequest,
    filters: LedgerEntryFilters,
) -> Page[LedgerEntryPublic]:
    entries = await statements.statement(uow, rider_id, page=page, filters=filters)
    return entries.map(from_row(LedgerEntryPublic))


@router.get(
    "/riders",
    tags=["riders (staff)"],
    summary="Riders in your scope; ?flagged=true lists riders with many false reports",
)
async def list_riders(
    uow: UoW,
    who: Staff,
    page: PageQuery,
    filters: Annotated[RiderFilters, Query()],
) -> Page[RiderStaffView]:
    found = await riders.list_riders(uow, who, page=page, filters=filters)
    return found.map(_staff_view)


@router.get("/riders/{rider_id}", tags=["riders (staff)"])
async def get_rider(rider_id: UUID, uow: UoW, who: Staff) -> RiderStaffView:
    return _staff_view(await riders.get_rider(uow, who, rider_id))


@router.patch(
    "/riders/{rider_id}", tags=["riders (staff)"], summary="Set a rider's role (red / blue / yellow), team or community"
)
async def staff_update_rider(rider_id: UUID, body: RiderStaffUpdate, uow: UoW, who: Staff) -> RiderStaffView:
    rider = await riders.get_rider(uow, who, rider_id, for_update=True)
    await riders.staff_update_rider(uow, who, rider, body)
    await uow.commit()
    return _staff_view(rider)


@router.post("/riders/{rider_id}/verify", tags=["riders (staff)"], summary="Verify a registration (pending → active)")
async def verify_rider(rider_id: UUID, uow: UoW, who: Staff) -> RiderStaffView:
    return await _change_status(uow, who, rider_id, lambda rider: riders.verify_rider(rider, who))


@router.post("/riders/{rider_id}/suspend", tags=["riders (staff)"])
async def suspend_rider(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    return await _change_status(uow, who, rider_id, lambda rider: riders.suspend_rider(rider, body.reason))


@router.post("/riders/{rider_id}/reinstate", tags=["riders (staff)"])
async def reinstate_rider(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    return await _change_status(uow, who, rider_id, lambda rider: riders.reinstate_rider(rider, body.reason))


@router.post(
    "/riders/{rider_id}/clear-flag", tags=["riders (staff)"], summary="Clear the false-report flag after review"
)
async def clear_flag(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    return await _change_status(uow, who, rider_id, lambda rider: riders.clear_flag(rider, body.reason))


@router.get("/riders/{rider_id}/balance", response_model=BalancePublic, tags=["ledger (staff)"])
async def rider_balance(rider_id: UUID, uow: UoW, who: Staff) -> Response:
    rider = await riders.get_rider(uow, who, rider_id)
    return validated_json(await ledger.balance_view(uow, rider.id))


@router.get("/riders/{rider_id}/statement", tags=["ledger (staff)"])
async def rider_statement(
    rider_id: UUID,
    uow: UoW,
    who: Staff,
    page: PageQuery,
    filters: Annotated[LedgerEntryFilters, Query()],
) -> Page[LedgerEntryPublic]:
    rider = await riders.get_rider(uow, who, rider_id)
    return await _statement(uow, rider.id, page, filters)


@router.post(
    "/riders/{rider_id}/adjustments",
    status_code=201,
    response_model=LedgerEntryPublic,
    tags=["ledger (staff)"],
    summary="Adjust a balance with a reason (never below zero); Idempotency-Key",
)
async def adjust(
    rider_id: UUID, body: Adjustment, uow: UoW, who: Staff, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    rider = await riders.get_rider(uow, who, rider_id)

    async def action() -> tuple[int, LedgerEntryPublic]:
        entry = await ledger.adjust(uow, rider.id, body.amount, body.reason, who.sub)
        return 201, LedgerEntryPublic(
            id=entry.id,
            kind=entry.kind,
            amount=entry.amount,
            balance_after=entry.balance_after,
            cause_type=entry.cause_type,
            cause_id=entry.cause_id,
            note=entry.note,
            created_at=entry.created_at,
        )

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:adjust:{rider.id}", body=body, action=action)


async def _change_status(uow: UoW, who: Principal, rider_id: UUID, change: Callable[[Rider], Rider]) -> RiderStaffView:
    """Lock the rider, apply a status change (verify, suspend, reinstate, clear the flag), commit once."""
    rider = change(await riders.get_rider(uow, who, rider_id, for_update=True))
    await uow.commit()
    return _staff_view(rider)
