"""Routes under ``/points/task-types``: the published list of governance tasks."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.access import is_staff
from minsheng.platform.service import UoW
from services.points import tasks
from services.points.models import TaskTypeCreate, TaskTypePublic, TaskTypeUpdate, TypeCode
from services.points.views.deps import Caller, Staff

router = APIRouter()


@router.get(
    "/task-types",
    tags=["tasks"],
    summary="The published list of governance tasks riders may take part in (骑士参与治理事项清单)",
)
async def list_task_types(uow: UoW, who: Caller, include_inactive: bool = False) -> list[TaskTypePublic]:
    types = await tasks.list_types(uow, include_inactive=include_inactive and is_staff(who))
    return [TaskTypePublic.model_validate(t, from_attributes=True) for t in types]


@router.post("/task-types", status_code=201, tags=["tasks (staff)"])
async def create_task_type(body: TaskTypeCreate, uow: UoW, who: Staff) -> TaskTypePublic:
    task_type = await tasks.create_type(uow, body)
    await uow.commit()
    return TaskTypePublic.model_validate(task_type, from_attributes=True)


@router.patch("/task-types/{code}", tags=["tasks (staff)"])
async def update_task_type(code: TypeCode, body: TaskTypeUpdate, uow: UoW, who: Staff) -> TaskTypePublic:
    task_type = await tasks.update_type(uow, code, body)
    await uow.commit()
    return TaskTypePublic.model_validate(task_type, from_attributes=True)
