"""Routes under ``/visits/tasks``: visit tasks."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.visits import tasks
from services.visits.models import TaskCancel, TaskCreate, TaskFilters, TaskPublic
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["tasks"])


@router.get("/tasks", dependencies=[FIELD])
async def list_tasks(
    uow: UoW,
    who: Who,
    filters: Annotated[TaskFilters, Query()],
    page: PageQuery,
) -> Page[TaskPublic]:
    found = await tasks.list_tasks(uow, who, filters=filters, page=page)
    return found.map(tasks.task_public)


@router.post("/tasks", status_code=201, dependencies=[STAFF], summary="Ask for a follow-up visit to a household")
async def create_task(body: TaskCreate, uow: UoW, who: Who) -> TaskPublic:
    task = await tasks.create_task(uow, who, body)
    await commit(uow)
    return tasks.task_public(task)


@router.get("/tasks/{task_id}", dependencies=[FIELD])
async def get_task(task_id: UUID, uow: UoW, who: Who) -> TaskPublic:
    return tasks.task_public(await tasks.get_task(uow, who, task_id))


@router.post("/tasks/{task_id}/cancel", dependencies=[STAFF])
async def cancel_task(task_id: UUID, body: TaskCancel, uow: UoW, who: Who) -> TaskPublic:
    task = await tasks.get_task(uow, who, task_id)
    await tasks.cancel_task(uow, who, task, body.reason)
    await commit(uow)
    return tasks.task_public(task)
