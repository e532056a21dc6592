"""HTTP API of the points service (mounted at ``/points``) for riders and staff. Thin: parse, authorize, call
the service layer, commit once. The signed merchant API is in ``merchant_api.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from minsheng.platform import ratelimit
from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.coords import CoordSystemQuery, reproject
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.images import ImageLimits
from minsheng.platform.inputs import Instant, MonthText
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from minsheng.platform.photos import owned_photo_paths, photos_router, refuse_photo_urls
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import Runtime, UoW
from services.points import config, hazards, ledger, merchant_api, merchants, riders, tasks
from services.points.models import (
    Adjustment,
    BalancePublic,
    CodeIssued,
    CodeRequest,
    CredentialCreate,
    CredentialIssued,
    CredentialPublic,
    EntryKind,
    HazardReport,
    HazardReportCreate,
    HazardReportPublic,
    HazardStatus,
    Leaderboard,
    LedgerEntryPublic,
    MerchantCreate,
    MerchantPublic,
    MerchantStatus,
    MerchantUpdate,
    OfferCreate,
    OfferKind,
    OfferPublic,
    Photo,
    Reason,
    RedemptionStatus,
    Rider,
    RiderCreate,
    RiderPublic,
    RiderRedemptionPublic,
    RiderRole,
    RiderSelfUpdate,
    RiderStaffUpdate,
    RiderStaffView,
    RiderStatus,
    StaffRedemptionView,
    StatementSummary,
    TaskCreate,
    TaskProof,
    TaskPublic,
    TaskReject,
    TaskStatus,
    TaskTypeCreate,
    TaskTypePublic,
    TaskTypeUpdate,
    TeamCreate,
    TeamPublic,
    TeamUpdate,
)

router = APIRouter()
RiderPrincipal = Annotated[Principal, Depends(require(Role.rider))]
Staff = Annotated[Principal, Depends(require(Role.staff))]
RiderOrStaff = Annotated[Principal, Depends(require(Role.rider, Role.staff))]
Caller = Annotated[Principal, Depends(current_principal)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def _is_staff(who: Principal) -> bool:
    return who.has(Role.staff) or who.is_admin


def _rider_limit(rider: Rider | riders.RiderSummary) -> None:
    settings = config.get()
    ratelimit.check(f"rider:{rider.id}", settings.rider_rate_per_second, settings.rider_burst)


def _report(report: HazardReport) -> HazardReportPublic:
    return HazardReportPublic.model_validate(report, from_attributes=True)


def _staff_view(rider: Rider) -> RiderStaffView:
    return RiderStaffView.model_validate(rider, from_attributes=True)


# --- riders ---------------------------------------------------------------------------------------------------


@router.post(
    "/riders",
    status_code=201,
    response_model=RiderPublic,
    tags=["riders"],
    summary="Register the calling account as a rider (staff verify it before tasks and redemption)",
)
async def register_rider(body: RiderCreate, uow: UoW, who: RiderPrincipal, runtime: Runtime) -> RiderPublic:
    rider = await riders.register_rider(uow, who.sub, body, merchants.cipher(runtime.settings))
    await uow.commit()
    return RiderPublic.model_validate(rider, from_attributes=True)


@router.get("/riders/me", response_model=RiderPublic, tags=["riders"])
async def my_profile(uow: UoW, who: RiderPrincipal) -> RiderPublic:
    return RiderPublic.model_validate(await riders.rider_by_subject(uow, who.sub), from_attributes=True)


@router.patch("/riders/me", response_model=RiderPublic, tags=["riders"], summary="Change your name, platform or phone")
async def update_profile(body: RiderSelfUpdate, uow: UoW, who: RiderPrincipal, runtime: Runtime) -> RiderPublic:
    rider = await riders.update_self(
        uow, await riders.rider_by_subject(uow, who.sub), body, merchants.cipher(runtime.settings)
    )
    await uow.commit()
    return RiderPublic.model_validate(rider, from_attributes=True)


@router.get(
    "/riders/me/balance",
    response_model=BalancePublic,
    tags=["ledger"],
    summary="Your balance, what expires soon, and today's earnings against the daily cap",
)
async def my_balance(uow: UoW, who: RiderPrincipal) -> BalancePublic:
    return await ledger.balance_of_subject(uow, who.sub)


@router.get(
    "/riders/me/statement",
    response_model=Page[LedgerEntryPublic],
    tags=["ledger"],
    summary="Your ledger entries, newest first",
)
async def my_statement(
    uow: UoW,
    who: RiderPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    kind: EntryKind | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[LedgerEntryPublic]:
    rider = await riders.rider_by_subject(uow, who.sub)
    return await _statement(uow, rider.id, limit, cursor, kind, since, until)


async def _statement(
    uow: UoW,
    rider_id: UUID,
    limit: int,
    cursor: str | None,
    kind: EntryKind | None,
    since: datetime | None,
    until: datetime | None,
) -> Page[LedgerEntryPublic]:
    page = await ledger.statement(uow, rider_id, limit=limit, cursor=cursor, kind=kind, since=since, until=until)
    return Page[LedgerEntryPublic](
        items=[LedgerEntryPublic.model_validate(e, from_attributes=True) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/riders",
    response_model=Page[RiderStaffView],
    tags=["riders (staff)"],
    summary="Riders in your scope; ?flagged=true lists riders with many false reports",
)
async def list_riders(
    uow: UoW,
    who: Staff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    community: str | None = None,
    status: RiderStatus | None = None,
    role: RiderRole | None = None,
    team_id: UUID | None = None,
    flagged: bool | None = None,
) -> Page[RiderStaffView]:
    page = await riders.list_riders(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        community=community,
        status=status,
        role=role,
        team_id=team_id,
        flagged=flagged,
    )
    return Page[RiderStaffView](items=[_staff_view(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/riders/{rider_id}", response_model=RiderStaffView, tags=["riders (staff)"])
async def get_rider(rider_id: UUID, uow: UoW, who: Staff) -> RiderStaffView:
    return _staff_view(await riders.get_rider(uow, who, rider_id))


@router.patch(
    "/riders/{rider_id}",
    response_model=RiderStaffView,
    tags=["riders (staff)"],
    summary="Set a rider's role (red / blue / yellow), team or community",
)
async def staff_update_rider(rider_id: UUID, body: RiderStaffUpdate, uow: UoW, who: Staff) -> RiderStaffView:
    rider = await riders.get_rider(uow, who, rider_id, for_update=True)
    await riders.staff_update_rider(uow, who, rider, body)
    await uow.commit()
    return _staff_view(rider)


@router.post(
    "/riders/{rider_id}/verify",
    response_model=RiderStaffView,
    tags=["riders (staff)"],
    summary="Verify a registration (pending → active)",
)
async def verify_rider(rider_id: UUID, uow: UoW, who: Staff) -> RiderStaffView:
    rider = riders.verify_rider(await riders.get_rider(uow, who, rider_id, for_update=True), who)
    await uow.commit()
    return _staff_view(rider)


@router.post("/riders/{rider_id}/suspend", response_model=RiderStaffView, tags=["riders (staff)"])
async def suspend_rider(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    rider = riders.suspend_rider(await riders.get_rider(uow, who, rider_id, for_update=True), body.reason)
    await uow.commit()
    return _staff_view(rider)


@router.post("/riders/{rider_id}/reinstate", response_model=RiderStaffView, tags=["riders (staff)"])
async def reinstate_rider(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    rider = riders.reinstate_rider(await riders.get_rider(uow, who, rider_id, for_update=True), body.reason)
    await uow.commit()
    return _staff_view(rider)


@router.post(
    "/riders/{rider_id}/clear-flag",
    response_model=RiderStaffView,
    tags=["riders (staff)"],
    summary="Clear the false-report flag after review",
)
async def clear_flag(rider_id: UUID, body: Reason, uow: UoW, who: Staff) -> RiderStaffView:
    rider = riders.clear_flag(await riders.get_rider(uow, who, rider_id, for_update=True), body.reason)
    await uow.commit()
    return _staff_view(rider)


@router.get("/riders/{rider_id}/balance", response_model=BalancePublic, tags=["ledger (staff)"])
async def rider_balance(rider_id: UUID, uow: UoW, who: Staff) -> BalancePublic:
    rider = await riders.get_rider(uow, who, rider_id)
    return await ledger.balance_view(uow, rider.id)


@router.get("/riders/{rider_id}/statement", response_model=Page[LedgerEntryPublic], tags=["ledger (staff)"])
async def rider_statement(
    rider_id: UUID,
    uow: UoW,
    who: Staff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    kind: EntryKind | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[LedgerEntryPublic]:
    rider = await riders.get_rider(uow, who, rider_id)
    return await _statement(uow, rider.id, limit, cursor, kind, since, until)


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


# --- teams ----------------------------------------------------------------------------------------------------


@router.post(
    "/teams", status_code=201, response_model=TeamPublic, tags=["teams"], summary="Create a team, led by a red rider"
)
async def create_team(body: TeamCreate, uow: UoW, who: Staff) -> TeamPublic:
    team = await riders.create_team(uow, who, body)
    await uow.commit()
    return TeamPublic.model_validate(team, from_attributes=True).model_copy(
        update={"members": await riders.team_size(uow, team.id)}
    )


@router.get("/teams", response_model=Page[TeamPublic], tags=["teams"])
async def list_teams(
    uow: UoW, who: RiderOrStaff, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None, community: str | None = None
) -> Page[TeamPublic]:
    page = await riders.list_teams(uow, limit=limit, cursor=cursor, community=community)
    return Page[TeamPublic](
        items=[
            TeamPublic.model_validate(t, from_attributes=True).model_copy(update={"members": n}) for t, n in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/teams/{team_id}", response_model=TeamPublic, tags=["teams"])
async def get_team(team_id: UUID, uow: UoW, who: RiderOrStaff) -> TeamPublic:
    team = await riders.get_team(uow, who, team_id)
    return TeamPublic.model_validate(team, from_attributes=True).model_copy(
        update={"members": await riders.team_size(uow, team.id)}
    )


@router.patch("/teams/{team_id}", response_model=TeamPublic, tags=["teams"])
async def update_team(team_id: UUID, body: TeamUpdate, uow: UoW, who: Staff) -> TeamPublic:
    team = await riders.get_team(uow, who, team_id)
    await riders.update_team(uow, who, team, body)
    await uow.commit()
    return TeamPublic.model_validate(team, from_attributes=True).model_copy(
        update={"members": await riders.team_size(uow, team.id)}
    )


# --- leaderboards ---------------------------------------------------------------------------------------------


@router.get(
    "/leaderboards/{by}",
    response_model=Leaderboard,
    tags=["leaderboards"],
    summary="Monthly net points (earned minus reversed) by team, community or rider (names masked)",
)
async def leaderboard(
    by: Literal["team", "community", "rider"],
    uow: UoW,
    who: RiderOrStaff,
    month: Annotated[MonthText | None, Query(description="YYYY-MM, local; default this month")] = None,
    community: str | None = None,
    team_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    return await ledger.leaderboard(
        uow, by=by, month=ledger.parse_month(month), community=community, team_id=team_id, limit=limit
    )


# --- hazard reports -------------------------------------------------------------------------------------------


@router.post(
    "/hazard-reports",
    status_code=201,
    response_model=HazardReportPublic,
    tags=["hazard reports"],
    summary="Report a hazard (fire, gas or water leak are forwarded as urgent issues)",
    responses=RATE_LIMITED,
)
async def report_hazard(
    body: HazardReportCreate, uow: UoW, who: RiderPrincipal, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    refuse_photo_urls(body.photo_urls, "points")
    rider, duplicates = await hazards.reporting_rider(uow, who.sub, body)
    _rider_limit(rider)
    photos = await owned_photo_paths(uow, Photo, "points", who.sub, body.photo_ids)

    async def action() -> tuple[int, HazardReportPublic]:
        return 201, await hazards.report_hazard(uow, rider, body.model_copy(update={"photo_urls": photos}), duplicates)

    return await idempotent(uow, key=idempotency_key, scope=f"rider:{rider.id}:hazard-report", body=body, action=action)


@router.get(
    "/hazard-reports",
    response_model=Page[HazardReportPublic],
    tags=["hazard reports"],
    summary="Riders: your reports. Staff: reports in your scope",
)
async def list_reports(
    uow: UoW,
    who: RiderOrStaff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: HazardStatus | None = None,
    community: str | None = None,
    category: str | None = None,
    coord_system: CoordSystemQuery = None,
) -> Page[HazardReportPublic]:
    rider = None if _is_staff(who) else await riders.rider_by_subject(uow, who.sub)
    page = await hazards.list_reports(
        uow, rider, limit=limit, cursor=cursor, status=status, who=who, community=community, category=category
    )
    items = [reproject(_report(r), coord_system) for r in page.items]
    return Page[HazardReportPublic](items=items, next_cursor=page.next_cursor)


@router.get(
    "/hazard-reports/{report_id}",
    response_model=HazardReportPublic,
    tags=["hazard reports"],
    summary="One report with the issue's progress",
)
async def get_report(
    report_id: UUID, uow: UoW, who: RiderOrStaff, coord_system: CoordSystemQuery = None
) -> HazardReportPublic:
    if _is_staff(who):
        return reproject(_report(await hazards.get_report_as_staff(uow, who, report_id)), coord_system)
    rider = await riders.rider_by_subject(uow, who.sub)
    return reproject(_report(await hazards.get_report(uow, rider, report_id)), coord_system)


# --- governance tasks -----------------------------------------------------------------------------------------


@router.get(
    "/task-types",
    response_model=list[TaskTypePublic],
    tags=["tasks"],
    summary="The published list of governance tasks riders may take part in (骑士参与治理事项清单)",
)
async def list_task_types(uow: UoW, who: Caller, include_inactive: bool = False) -> list[TaskTypePublic]:
    types = await tasks.list_types(uow, include_inactive=include_inactive and _is_staff(who))
    return [TaskTypePublic.model_validate(t, from_attributes=True) for t in types]


@router.post("/task-types", status_code=201, response_model=TaskTypePublic, tags=["tasks (staff)"])
async def create_task_type(body: TaskTypeCreate, uow: UoW, who: Staff) -> TaskTypePublic:
    task_type = await tasks.create_type(uow, body)
    await uow.commit()
    return TaskTypePublic.model_validate(task_type, from_attributes=True)


@router.patch("/task-types/{code}", response_model=TaskTypePublic, tags=["tasks (staff)"])
async def update_task_type(code: str, body: TaskTypeUpdate, uow: UoW, who: Staff) -> TaskTypePublic:
    task_type = await tasks.update_type(uow, code, body)
    await uow.commit()
    return TaskTypePublic.model_validate(task_type, from_attributes=True)


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskPublic,
    tags=["tasks (staff)"],
    summary="Post a concrete task for riders to claim",
)
async def post_task(body: TaskCreate, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.post_task(uow, who, body)
    await uow.commit()
    return tasks.present(task, who, None)


async def _maybe_rider(uow: UoW, who: Principal) -> Rider | None:
    if _is_staff(who):
        return None
    return await riders.rider_by_subject(uow, who.sub)


@router.get(
    "/tasks",
    response_model=Page[TaskPublic],
    tags=["tasks"],
    summary="Riders: open tasks (or yours with ?mine=true). Staff: tasks in scope",
)
async def list_tasks(
    uow: UoW,
    who: RiderOrStaff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: TaskStatus | None = None,
    community: str | None = None,
    type_code: str | None = None,
    mine: bool = False,
) -> Page[TaskPublic]:
    rider = await riders.rider_by_subject(uow, who.sub) if mine else await _maybe_rider(uow, who)
    page = await tasks.list_tasks(
        uow, who, rider, limit=limit, cursor=cursor, status=status, community=community, type_code=type_code, mine=mine
    )
    return Page[TaskPublic](items=[tasks.present(t, who, rider) for t in page.items], next_cursor=page.next_cursor)


@router.get("/tasks/{task_id}", response_model=TaskPublic, tags=["tasks"])
async def get_task(task_id: UUID, uow: UoW, who: RiderOrStaff) -> TaskPublic:
    rider = await _maybe_rider(uow, who)
    return tasks.present(await tasks.get_task(uow, who, task_id, rider), who, rider)


@router.post(
    "/tasks/{task_id}/claim",
    response_model=TaskPublic,
    tags=["tasks"],
    summary="Take an open task (first come, first served)",
    responses=RATE_LIMITED,
)
async def claim_task(task_id: UUID, uow: UoW, who: RiderPrincipal) -> TaskPublic:
    rider = await riders.rider_by_subject(uow, who.sub)
    riders.ensure_verified(rider)
    _rider_limit(rider)
    task = await tasks.claim(uow, rider, task_id)
    await uow.commit()
    return tasks.present(task, who, rider)


@router.post(
    "/tasks/{task_id}/release",
    response_model=TaskPublic,
    tags=["tasks"],
    summary="Give a claimed task back to the list",
)
async def release_task(task_id: UUID, uow: UoW, who: RiderPrincipal) -> TaskPublic:
    rider = await riders.rider_by_subject(uow, who.sub)
    task = await tasks.release(uow, rider, await tasks.get_task(uow, who, task_id, rider, for_update=True))
    await uow.commit()
    return tasks.present(task, who, rider)


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskPublic,
    tags=["tasks"],
    summary="Report a task done, with proof (auto-verified types post points at once)",
)
async def complete_task(task_id: UUID, body: TaskProof, uow: UoW, who: RiderPrincipal) -> TaskPublic:
    refuse_photo_urls(body.photo_urls, "points")
    rider = await riders.rider_by_subject(uow, who.sub)
    riders.ensure_verified(rider)
    proof = body.model_copy(
        update={"photo_urls": await owned_photo_paths(uow, Photo, "points", who.sub, body.photo_ids)}
    )
    task = await tasks.complete(uow, rider, await tasks.get_task(uow, who, task_id, rider, for_update=True), proof)
    await uow.commit()
    return tasks.present(task, who, rider)


@router.post(
    "/tasks/{task_id}/verify",
    response_model=TaskPublic,
    tags=["tasks (staff)"],
    summary="Accept the proof: points are posted and the requester told",
)
async def verify_task(task_id: UUID, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.verify(uow, who, await tasks.get_task(uow, who, task_id, for_update=True))
    await uow.commit()
    return tasks.present(task, who, None)


@router.post("/tasks/{task_id}/reject", response_model=TaskPublic, tags=["tasks (staff)"])
async def reject_task(task_id: UUID, body: TaskReject, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.reject(uow, who, await tasks.get_task(uow, who, task_id, for_update=True), body)
    await uow.commit()
    return tasks.present(task, who, None)


@router.post("/tasks/{task_id}/withdraw", response_model=TaskPublic, tags=["tasks (staff)"])
async def withdraw_task(task_id: UUID, body: Reason, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.withdraw(uow, who, await tasks.get_task(uow, who, task_id, for_update=True), body.reason)
    await uow.commit()
    return tasks.present(task, who, None)


# --- offers and redemption (the rider's side) -----------------------------------------------------------------


@router.get(
    "/offers",
    response_model=Page[OfferPublic],
    tags=["redemption"],
    summary="Offers available now at alliance merchants",
)
async def list_offers(
    uow: UoW,
    who: Caller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    merchant_id: UUID | None = None,
    community: str | None = None,
    kind: OfferKind | None = None,
    max_points: int | None = None,
) -> Page[OfferPublic]:
    page = await merchants.list_offers(
        uow, limit=limit, cursor=cursor, merchant_id=merchant_id, community=community, kind=kind, max_points=max_points
    )
    return Page[OfferPublic](items=[merchants.offer_view(o, n) for o, n in page.items], next_cursor=page.next_cursor)


@router.get("/offers/{offer_id}", response_model=OfferPublic, tags=["redemption"])
async def get_offer(offer_id: UUID, uow: UoW, who: Caller) -> OfferPublic:
    offer = await merchants.get_offer(uow, offer_id)
    merchant = await merchants.get_merchant(uow, None, offer.merchant_id)
    return merchants.offer_view(offer, merchant.name)


@router.post(
    "/redemption-codes",
    status_code=201,
    response_model=CodeIssued,
    tags=["redemption"],
    summary="A short-lived one-time code (and QR payload) to show at the merchant's counter",
    responses=RATE_LIMITED,
)
async def issue_code(uow: UoW, who: RiderPrincipal, body: CodeRequest | None = None) -> CodeIssued:
    rider = await riders.rider_by_subject(uow, who.sub)
    riders.ensure_verified(rider)
    _rider_limit(rider)
    issued = await merchants.issue_code(uow, rider, body.offer_id if body else None)
    await uow.commit()
    return issued


@router.get(
    "/redemptions",
    response_model=Page[RiderRedemptionPublic],
    tags=["redemption"],
    summary="Your redemptions, newest first",
)
async def my_redemptions(
    uow: UoW, who: RiderPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[RiderRedemptionPublic]:
    rider = await riders.rider_by_subject(uow, who.sub)
    return await merchants.rider_redemptions(uow, rider, limit=limit, cursor=cursor)


# --- merchants (staff) ----------------------------------------------------------------------------------------


@router.post(
    "/merchants",
    status_code=201,
    response_model=MerchantPublic,
    tags=["merchants (staff)"],
    summary="Onboard an alliance merchant",
)
async def create_merchant(body: MerchantCreate, uow: UoW, who: Staff, runtime: Runtime) -> MerchantPublic:
    merchant = await merchants.create_merchant(uow, who, body, merchants.cipher(runtime.settings))
    await uow.commit()
    return MerchantPublic.model_validate(merchant, from_attributes=True)


@router.get("/merchants", response_model=Page[MerchantPublic], tags=["merchants (staff)"])
async def list_merchants(
    uow: UoW,
    who: Staff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    community: str | None = None,
    status: MerchantStatus | None = None,
) -> Page[MerchantPublic]:
    page = await merchants.list_merchants(uow, who, limit=limit, cursor=cursor, community=community, status=status)
    return Page[MerchantPublic](
        items=[MerchantPublic.model_validate(m, from_attributes=True) for m in page.items], next_cursor=page.next_cursor
    )


@router.get("/merchants/{merchant_id}", response_model=MerchantPublic, tags=["merchants (staff)"])
async def get_merchant(merchant_id: UUID, uow: UoW, who: Staff) -> MerchantPublic:
    return MerchantPublic.model_validate(await merchants.get_merchant(uow, who, merchant_id), from_attributes=True)


@router.patch(
    "/merchants/{merchant_id}",
    response_model=MerchantPublic,
    tags=["merchants (staff)"],
    summary="Change details, the void window, or suspend / reactivate",
)
async def update_merchant(
    merchant_id: UUID, body: MerchantUpdate, uow: UoW, who: Staff, runtime: Runtime
) -> MerchantPublic:
    merchant = await merchants.update_merchant(
        uow, await merchants.get_merchant(uow, who, merchant_id), body, merchants.cipher(runtime.settings)
    )
    await uow.commit()
    return MerchantPublic.model_validate(merchant, from_attributes=True)


@router.post(
    "/merchants/{merchant_id}/credentials",
    status_code=201,
    response_model=CredentialIssued,
    tags=["merchants (staff)"],
    summary="Issue an API key; the secret is shown once",
)
async def issue_credential(
    merchant_id: UUID, uow: UoW, runtime: Runtime, who: Staff, body: CredentialCreate | None = None
) -> CredentialIssued:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    credential, secret = await merchants.issue_credential(
        uow, runtime.settings, who, merchant, body.label if body else None
    )
    await uow.commit()
    return CredentialIssued(
        **CredentialPublic.model_validate(credential, from_attributes=True).model_dump(), secret=secret
    )


@router.get("/merchants/{merchant_id}/credentials", response_model=list[CredentialPublic], tags=["merchants (staff)"])
async def list_credentials(merchant_id: UUID, uow: UoW, who: Staff) -> list[CredentialPublic]:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    return [
        CredentialPublic.model_validate(c, from_attributes=True)
        for c in await merchants.credentials_of(uow, merchant.id)
    ]


@router.delete(
    "/merchants/{merchant_id}/credentials/{key_id}",
    response_model=CredentialPublic,
    tags=["merchants (staff)"],
    summary="Revoke an API key at once",
)
async def revoke_credential(merchant_id: UUID, key_id: str, uow: UoW, who: Staff) -> CredentialPublic:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    credential = await merchants.revoke_credential(uow, merchant.id, key_id)
    await uow.commit()
    return CredentialPublic.model_validate(credential, from_attributes=True)


@router.post(
    "/merchants/{merchant_id}/offers",
    status_code=201,
    response_model=OfferPublic,
    tags=["merchants (staff)"],
    summary="Publish an offer on a merchant's behalf",
)
async def create_offer(merchant_id: UUID, body: OfferCreate, uow: UoW, who: Staff) -> OfferPublic:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    offer = await merchants.create_offer(uow, merchant, body)
    await uow.commit()
    return merchants.offer_view(offer, merchant.name)


@router.get(
    "/merchants/{merchant_id}/redemptions",
    response_model=Page[StaffRedemptionView],
    tags=["merchants (staff)"],
    summary="A merchant's redemptions (disputes, audits); with the rider's id",
)
async def merchant_redemptions(
    merchant_id: UUID,
    uow: UoW,
    runtime: Runtime,
    who: Staff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: RedemptionStatus | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[StaffRedemptionView]:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    page = await merchants.list_redemptions(
        uow, merchant.id, limit=limit, cursor=cursor, status=status, since=since, until=until
    )
    items = [
        StaffRedemptionView(
            **merchants.redemption_view(runtime.settings, r, t, merchant.void_window_minutes).model_dump(),
            rider_id=r.rider_id,
        )
        for r, t in page.items
    ]
    return Page[StaffRedemptionView](items=items, next_cursor=page.next_cursor)


@router.get(
    "/merchants/{merchant_id}/statements/{month}",
    response_model=StatementSummary,
    tags=["merchants (staff)"],
    summary="A merchant's monthly settlement statement; ?format=csv",
)
async def merchant_statement(
    merchant_id: UUID, month: MonthText, uow: UoW, runtime: Runtime, who: Staff, format: Literal["json", "csv"] = "json"
) -> Response:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    return await merchant_api.statement_response(uow, runtime, merchant.id, month, format)


router.include_router(merchant_api.router)
router.include_router(
    photos_router(
        "points",
        Photo,
        lambda: ImageLimits(max_bytes=config.get().photo_max_bytes),
        lambda who: who.has(Role.rider, Role.staff, Role.admin),
    )
)
