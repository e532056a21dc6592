"""Routes under ``/visits/grid-workers``: grid workers (网格员), their assignments and handover."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends

from minsheng.platform.auth import Role, require
from minsheng.platform.errors import Problem
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import UoW
from services.visits import workers
from services.visits.models import (
    AssignmentCreate,
    AssignmentPublic,
    CodeFilter,
    GridWorkerCreate,
    GridWorkerPublic,
    Handover,
    HandoverResult,
)
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["grid"])


@router.post("/grid-workers", status_code=201, dependencies=[STAFF], summary="Register a grid worker (网格员) account")
async def create_worker(body: GridWorkerCreate, uow: UoW, who: Who, cipher: Cipher) -> GridWorkerPublic:
    worker = await workers.create_worker(uow, who, body, cipher)
    await commit(uow)
    return GridWorkerPublic.model_validate(worker, from_attributes=True)


@router.get("/grid-workers", dependencies=[STAFF])
async def list_workers(
    uow: UoW,
    who: Who,
    *,
    community: CodeFilter = None,
    active: bool | None = True,
    page: PageQuery,
) -> Page[GridWorkerPublic]:
    workers_found = await workers.list_workers(uow, who, page=page, community=community, active=active)
    return workers_found.map(from_row(GridWorkerPublic))


@router.get("/grid-workers/me", dependencies=[Depends(require(Role.grid_worker))])
async def my_worker(who: Who) -> GridWorkerPublic:
    if who.worker is None:
        raise Problem(
            404,
            "grid_worker_not_registered",
            "Not registered as a grid worker",
            "Ask community staff to register your account.",
        )
    return GridWorkerPublic.model_validate(who.worker, from_attributes=True)


@router.get("/grid-workers/{worker_id}", dependencies=[FIELD])
async def get_worker(worker_id: UUID, uow: UoW, who: Who) -> GridWorkerPublic:
    return GridWorkerPublic.model_validate(await workers.get_worker(uow, who, worker_id), from_attributes=True)


@router.get("/grid-workers/{worker_id}/assignments", dependencies=[FIELD])
async def list_assignments(
    worker_id: UUID, uow: UoW, who: Who, *, include_ended: bool = False, page: PageQuery
) -> Page[AssignmentPublic]:
    worker = await workers.get_worker(uow, who, worker_id)
    found = await workers.list_assignments(uow, worker, page=page, include_ended=include_ended)
    return found.map(from_row(AssignmentPublic))


@router.post(
    "/grid-workers/{worker_id}/assignments",
    status_code=201,
    dependencies=[STAFF],
    summary="Assign a compound (or one building) to a grid worker",
)
async def add_assignment(worker_id: UUID, body: AssignmentCreate, uow: UoW, who: Who) -> AssignmentPublic:
    worker = await workers.get_worker(uow, who, worker_id)
    assignment = await workers.add_assignment(uow, who, worker, body)
    await commit(uow)
    return AssignmentPublic.model_validate(assignment, from_attributes=True)


@router.post(
    "/grid-workers/{worker_id}/handover",
    dependencies=[STAFF],
    summary="A worker leaves: places, open needs and tasks go to a successor",
)
async def handover(worker_id: UUID, body: Handover, uow: UoW, who: Who) -> HandoverResult:
    worker = await workers.get_worker(uow, who, worker_id)
    result = await workers.handover(uow, who, worker, body)
    await commit(uow)
    return result
