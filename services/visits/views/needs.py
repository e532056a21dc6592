"""Routes under ``/visits/needs``: the needs ledger and each need's steps to 销号."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable

from minsheng.platform.access import ensure_changeable
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from minsheng.platform.uow import UnitOfWork
from services.visits import ledger, places
from services.visits.access import Viewer, sees, writes
from services.visits.models import (
    Need,
    NeedConfirm,
    NeedDetail,
    NeedEscalate,
    NeedFilters,
    NeedNoteBody,
    NeedPublic,
    NeedRaise,
    NeedReason,
    NeedResolve,
    NeedUpdate,
)
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["needs ledger"])
A = TypeVar("A")


@router.post(
    "/needs",
    status_code=201,
    response_model=NeedPublic,
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
    summary="The ledger: filter by status (repeatable), owner, place, household, overdue",
)
async def list_needs(
    uow: UoW,
    who: Who,
    filters: Annotated[NeedFilters, Query()],
    page: PageQuery,
) -> Page[NeedPublic]:
    needs = await ledger.list_needs(uow, who, filters=filters, page=page)
    return needs.map(ledger.need_public)


@router.get("/needs/{need_id}")
async def get_need(need_id: UUID, uow: UoW, who: Who) -> NeedDetail:
    return await ledger.detail(uow, await ledger.get_need(uow, who, need_id))


def _step_route(path: str, **route: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """``POST /needs/{need_id}/<step>`` (``path`` in full, so a grep for the URL finds the route): a step of the
    need, answered with the need and its timeline."""
    return router.post(path, response_model=NeedDetail, **route)


async def _step(
    uow: UnitOfWork, who: Viewer, need_id: UUID, act: Callable[[UnitOfWork, Viewer, Need, A], Awaitable[Need]], arg: A
) -> NeedDetail:
    need = await ledger.get_need(uow, who, need_id, for_update=True)
    await act(uow, who, need, arg)
    await commit(uow)
    return await ledger.detail(uow, need)


@router.patch(
    "/needs/{need_id}",
    dependencies=[STAFF],
    summary="Supervisor: change owner, due date or urgency",
)
async def update_need(need_id: UUID, body: NeedUpdate, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.update, body)


@_step_route("/needs/{need_id}/start")
async def start_need(need_id: UUID, uow: UoW, who: Who, body: NeedNoteBody | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.start, body.note if body else None)


@_step_route("/needs/{need_id}/resolve", summary="Owner: done — say what was done")
async def resolve_need(need_id: UUID, body: NeedResolve, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.resolve, body)


@_step_route(
    "/needs/{need_id}/confirm", summary="The resident confirms (in the app, or in person to the grid worker): 销号"
)
async def confirm_need(need_id: UUID, uow: UoW, who: Who, body: NeedConfirm | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.confirm, body or NeedConfirm())


@_step_route("/needs/{need_id}/reopen", summary="The resident says it is not done")
async def reopen_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.reopen, body.reason)


@_step_route("/needs/{need_id}/close", dependencies=[STAFF], summary="Supervisor: close with a reason")
async def close_need(need_id: UUID, body: NeedReason, uow: UoW, who: Who) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.close, body.reason)


@_step_route(
    "/needs/{need_id}/escalate",
    dependencies=[FIELD],
    summary="Beyond the community: send to the issues service (NeedEscalated)",
)
async def escalate_need(need_id: UUID, uow: UoW, who: Who, body: NeedEscalate | None = None) -> NeedDetail:
    return await _step(uow, who, need_id, ledger.escalate, body.note if body else None)
