"""Routes under ``/visits/needs``: the needs ledger and each need's steps to 销号."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minsheng.platform.access import ensure_changeable
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import DEFAULT_LIMIT, Page
from minsheng.platform.service import UoW
from services.visits import ledger, places
from services.visits.access import Viewer, sees, writes
from services.visits.models import (
    NeedConfirm,
    NeedDetail,
    NeedEscalate,
    NeedNoteBody,
    NeedPublic,
    NeedRaise,
    NeedReason,
    NeedResolve,
    NeedStatus,
    NeedUpdate,
)
from services.visits.views.deps import FIELD, STAFF, Code, Cursor, Limit, Who, commit

router = APIRouter()


@router.post(
    "/needs",
    status_code=201,
    response_model=NeedPublic,
    tags=["needs ledger"],
    dependencies=[FIELD],
    summary="Write a need into the ledger outside a visit (a call, the office); retry-safe",
)
async def raise_need(body: NeedRaise, uow: UoW, who: Who, idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    household = await places.get_household(uow, who, body.household_id)
    ensure_changeable(sees(who, household), writes(who, household), "household", household.id)

    async def action() -> tuple[int, NeedPublic]:
        need = await ledger.raise_need(uow, who, household, body)
        await uow.session.flush()
        return 201, ledger.need_public(need)

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:raise-need", body=body, action=action)


@router.get(
    "/needs",
    response_model=Page[NeedPublic],
    tags=["needs ledger"],
    summary="The ledger: filter by status (repeatable), owner, place, household, overdue",
)
async def list_needs(
    uow: UoW,
    who: Who,
    status: Annotated[list[NeedStatus] | None, Query()] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    mine: bool = False,
    community: Code = None,
    compound: Code = None,
    household_id: UUID | None = None,
    resident_id: UUID | None = None,
    category: Code = None,
    overdue: bool = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[NeedPublic]:
    page = await ledger.list_needs(
        uow,
        who,
        limit=limit,
        cursor=cursor,
        status=status,
        owner=owner,
        mine=mine,
        community=community,
        compound=compound,
        household_id=household_id,
        resident_id=resident_id,
        category=category,
        overdue=overdue,
    )
    return page.map(ledger.need_public)


@router.get("/needs/{need_id}", response_model=NeedDetail, tags=["needs ledger"])
async def get_need(need_id: UUID, uow: UoW, who: Who) -> NeedDetail:
    return await ledger.detail(uow, await ledger.get_need(uow, who, need_id))


@router.patch(
    "/needs/{need_id}",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[STAFF],
    summary="Supervisor: change owner, due date or urgency",
)
async def update_need(need_id: UUID, body: NeedUpdate, uow: UoW, who: Who) -> NeedDetail:
    need = await ledger.get_need(uow, who, need_id, for_update=True)
    await ledger.update(uow, who, need, body)
    await commit(uow)
    return await ledger.detail(uow, need)


Step = Literal["start", "resolve", "confirm", "reopen", "close", "escalate"]


async def _step(uow: UoW, who: Viewer, need_id: UUID, step: Step, body: object) -> NeedDetail:
    need = await ledger.get_need(uow, who, need_id, for_update=True)
    if step == "start":
        await ledger.start(uow, who, need, body.note if isinstance(body, NeedNoteBody) else None)
    elif step == "resolve" and isinstance(body, NeedResolve):
        await ledger.resolve(uow, who, need, body)
    elif step == "confirm":
        await ledger.confirm(uow, who, need, body if isinstance(body, NeedConfirm) else NeedConfirm())
    elif step == "reopen" and isinstance(body, NeedReason):
        await ledger.reopen(uow, who, need, body.reason)
    elif step == "close" and isinstance(body, NeedReason):
        await ledger.close(uow, who, need, body.reason)
    elif step == "escalate":
        await ledger.escalate(uow, who, need, body.note if isinstance(body, NeedEscalate) else None)
    await commit(uow)
    return await ledger.detail(uow, need)


@router.post("/needs/{need_id}/start", response_model=NeedDetail, tags=["needs ledger"])
async def start_need(need_id: UUID, uow: UoW, who: Who, body: NeedNoteBody | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "start", body)


@router.post(
    "/needs/{need_id}/resolve",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="Owner: done — say what was done",
)
async def resolve_need(need_id: UUID, body: NeedResolve, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "resolve", body)


@router.post(
    "/needs/{need_id}/confirm",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="The resident confirms (in the app, or in person to the grid worker): 销号",
)
async def confirm_need(need_id: UUID, uow: UoW, who: Who, body: NeedConfirm | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "confirm", body)


@router.post(
    "/needs/{need_id}/reopen",
    response_model=NeedDetail,
    tags=["needs ledger"],
    summary="The resident says it is not done",
)
async def reopen_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "reopen", body)


@router.post(
    "/needs/{need_id}/close",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[STAFF],
    summary="Supervisor: close with a reason",
)
async def close_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, "close", body)


@router.post(
    "/needs/{need_id}/escalate",
    response_model=NeedDetail,
    tags=["needs ledger"],
    dependencies=[FIELD],
    summary="Beyond the community: send to the issues service (NeedEscalated)",
)
async def escalate_need(need_id: UUID, uow: UoW, who: Who, body: NeedEscalate | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, "escalate", body)
