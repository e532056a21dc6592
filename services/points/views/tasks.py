"""Routes under ``/points/tasks``: concrete governance tasks riders claim, complete and staff verify."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.access import is_staff
from minsheng.platform.auth import Principal
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.photos import owned_photo_paths, refuse_photo_urls
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import UoW
from services.points import riders, tasks
from services.points.models import (
    Photo,
    Reason,
    Rider,
    TaskCreate,
    TaskFilters,
    TaskProof,
    TaskPublic,
    TaskReject,
)
from services.points.views.deps import RiderOrStaff, RiderPrincipal, Staff, rider_limit

router = APIRouter()


@router.post("/tasks", status_code=201, tags=["tasks (staff)"], summary="Post a concrete task for riders to claim")
async def post_task(body: TaskCreate, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.post_task(uow, who, body)
    await uow.commit()
    return tasks.present(task, who, None)


async def _maybe_rider(uow: UoW, who: Principal) -> Rider | None:
    if is_staff(who):
        return None
    return await riders.rider_by_subject(uow, who.sub)


@router.get("/tasks", tags=["tasks"], summary="Riders: open tasks (or yours with ?mine=true). Staff: tasks in scope")
async def list_tasks(
    uow: UoW,
    who: RiderOrStaff,
    page: PageQuery,
    filters: Annotated[TaskFilters, Query()],
) -> Page[TaskPublic]:
    rider = await riders.rider_by_subject(uow, who.sub) if filters.mine else await _maybe_rider(uow, who)
    found = await tasks.list_tasks(uow, who, rider, page=page, filters=filters)
    return found.map(lambda t: tasks.present(t, who, rider))


@router.get("/tasks/{task_id}", tags=["tasks"])
async def get_task(task_id: UUID, uow: UoW, who: RiderOrStaff) -> TaskPublic:
    rider = await _maybe_rider(uow, who)
    return tasks.present(await tasks.get_task(uow, who, task_id, rider), who, rider)


@router.post(
    "/tasks/{task_id}/claim",
    tags=["tasks"],
    summary="Take an open task (first come, first served)",
    responses=RATE_LIMITED,
)
async def claim_task(task_id: UUID, uow: UoW, who: RiderPrincipal) -> TaskPublic:
    rider = await riders.rider_by_subject(uow, who.sub)
    riders.ensure_verified(rider)
    rider_limit(rider)
    task = await tasks.claim(uow, rider, task_id)
    await uow.commit()
    return tasks.present(task, who, rider)


@router.post("/tasks/{task_id}/release", tags=["tasks"], summary="Give a claimed task back to the list")
async def release_task(task_id: UUID, uow: UoW, who: RiderPrincipal) -> TaskPublic:
    rider = await riders.rider_by_subject(uow, who.sub)
    task = await tasks.release(uow, rider, await tasks.get_task(uow, who, task_id, rider, for_update=True))
    await uow.commit()
    return tasks.present(task, who, rider)


@router.post(
    "/tasks/{task_id}/complete",
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
    tags=["tasks (staff)"],
    summary="Accept the proof: points are posted and the requester told",
)
async def verify_task(task_id: UUID, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.verify(uow, who, await tasks.get_task(uow, who, task_id, for_update=True))
    await uow.commit()
    return tasks.present(task, who, None)


@router.post("/tasks/{task_id}/reject", tags=["tasks (staff)"])
async def reject_task(task_id: UUID, body: TaskReject, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.reject(uow, who, await tasks.get_task(uow, who, task_id, for_update=True), body)
    await uow.commit()
    return tasks.present(task, who, None)


@router.post("/tasks/{task_id}/withdraw", tags=["tasks (staff)"])
async def withdraw_task(task_id: UUID, body: Reason, uow: UoW, who: Staff) -> TaskPublic:
    task = await tasks.withdraw(uow, who, await tasks.get_task(uow, who, task_id, for_update=True), body.reason)
    await uow.commit()
    return tasks.present(task, who, None)
