"""HTTP API of the points service (mounted at ``/points``). Thin: parse, authorize, call the service layer,
commit once."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from minsheng.platform.auth import Principal, Role, require
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from minsheng.platform.service import UoW
from services.points import service
from services.points.models import (
    BalancePublic,
    HazardReportCreate,
    HazardReportPublic,
    HazardStatus,
    LedgerEntryPublic,
    RiderCreate,
    RiderPublic,
)

router = APIRouter()
RiderPrincipal = Annotated[Principal, Depends(require(Role.rider))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post("/riders", status_code=201, response_model=RiderPublic, tags=["riders"],
             summary="Register the calling account as a rider")
async def register_rider(body: RiderCreate, uow: UoW, who: RiderPrincipal) -> RiderPublic:
    rider = await service.register_rider(uow, who.sub, body)
    await uow.commit()
    return RiderPublic.model_validate(rider, from_attributes=True)


@router.get("/riders/me", response_model=RiderPublic, tags=["riders"])
async def my_profile(uow: UoW, who: RiderPrincipal) -> RiderPublic:
    return RiderPublic.model_validate(await service.rider_by_subject(uow, who.sub), from_attributes=True)


@router.get("/riders/me/balance", response_model=BalancePublic, tags=["ledger"])
async def my_balance(uow: UoW, who: RiderPrincipal) -> BalancePublic:
    rider = await service.rider_by_subject(uow, who.sub)
    return BalancePublic.model_validate(await service.balance_of(uow, rider.id), from_attributes=True)


@router.get("/riders/me/statement", response_model=Page[LedgerEntryPublic], tags=["ledger"])
async def my_statement(uow: UoW, who: RiderPrincipal, limit: Limit = DEFAULT_LIMIT,
                       cursor: str | None = None) -> Page[LedgerEntryPublic]:
    rider = await service.rider_by_subject(uow, who.sub)
    page = await service.statement(uow, rider.id, limit=limit, cursor=cursor)
    return Page[LedgerEntryPublic](
        items=[LedgerEntryPublic.model_validate(e, from_attributes=True) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/hazard-reports", status_code=201, response_model=HazardReportPublic, tags=["hazard reports"],
             summary="Report a hazard (fire, gas or water leak are forwarded as urgent issues)")
async def report_hazard(body: HazardReportCreate, uow: UoW, who: RiderPrincipal,
                        idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    rider = await service.rider_by_subject(uow, who.sub)

    async def action() -> tuple[int, HazardReportPublic]:
        report = await service.report_hazard(uow, rider, body)
        return 201, HazardReportPublic.model_validate(report, from_attributes=True)

    return await idempotent(uow, key=idempotency_key, scope=f"rider:{rider.id}:hazard-report", body=body,
                            action=action)


@router.get("/hazard-reports", response_model=Page[HazardReportPublic], tags=["hazard reports"])
async def my_reports(uow: UoW, who: RiderPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None,
                     status: HazardStatus | None = None) -> Page[HazardReportPublic]:
    rider = await service.rider_by_subject(uow, who.sub)
    page = await service.list_reports(uow, rider, limit=limit, cursor=cursor, status=status)
    return Page[HazardReportPublic](
        items=[HazardReportPublic.model_validate(r, from_attributes=True) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/hazard-reports/{report_id}", response_model=HazardReportPublic, tags=["hazard reports"])
async def get_report(report_id: UUID, uow: UoW, who: RiderPrincipal) -> HazardReportPublic:
    rider = await service.rider_by_subject(uow, who.sub)
    report = await service.get_report(uow, rider, report_id)
    return HazardReportPublic.model_validate(report, from_attributes=True)
