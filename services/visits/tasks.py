"""Visit tasks: staff's follow-up visits, reading, cancelling and listing tasks (welfare checks are opened in
``visiting``; a visit completes a household's open tasks there)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import select

from minsheng.platform.access import ensure, forbidden, visible_or_404
from minsheng.platform.errors import invalid_field, wrong_status
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer, sees_task, supervises
from services.visits.config import now
from services.visits.models import Resident, TaskCreate, TaskFilters, TaskKind, TaskPublic, TaskStatus, VisitTask
from services.visits.places import get_household
from services.visits.workers import worker_for_place


def task_public(t: VisitTask) -> TaskPublic:
    public = TaskPublic.model_validate(t, from_attributes=True)
    public.overdue = t.status == TaskStatus.open and t.due_at < now()
    return public


async def create_task(uow: UnitOfWork, viewer: Viewer, body: TaskCreate) -> VisitTask:
    household = await get_household(uow, viewer, body.household_id)
    ensure(supervises(viewer, household), forbidden("Community staff ask for follow-up visits."))
    if body.resident_id is not None:
        resident = await uow.session.get(Resident, body.resident_id)
        if resident is None or resident.household_id != household.id:
            raise invalid_field("resident_not_in_household", "resident_id", "The resident is not in this household.")
    if body.due_at is not None and body.due_at < now():
        raise invalid_field("due_at_in_past", "due_at", "The due time has passed.")
    worker = await worker_for_place(uow, household.compound, household.building_id)
    task = VisitTask(
        kind=TaskKind.follow_up,
        household_id=household.id,
        resident_id=body.resident_id,
        community=household.community,
        compound=household.compound,
        building_id=household.building_id,
        urgent=body.urgent,
        reason=body.reason,
        source="staff",
        created_by=viewer.sub,
        due_at=body.due_at or now() + timedelta(days=1 if body.urgent else 7),
        assigned_worker_id=worker.id if worker else None,
    )
    uow.session.add(task)
    return task


async def get_task(uow: UnitOfWork, viewer: Viewer, task_id: UUID) -> VisitTask:
    task = await uow.session.get(VisitTask, task_id)
    return visible_or_404(task, lambda t: sees_task(viewer, t), "task", task_id)


async def cancel_task(uow: UnitOfWork, viewer: Viewer, task: VisitTask, reason: str) -> VisitTask:
    ensure(supervises(viewer, task), forbidden("Community staff cancel visit tasks."))
    if task.status != TaskStatus.open:
        raise wrong_status(
            "task_not_open", _t("The visit task is {status}.", status=task.status), current_status=task.status
        )
    task.status = TaskStatus.cancelled
    task.reason = f"{task.reason} — cancelled: {reason}"[:500]
    task.updated_at = utcnow()
    return task


def task_scope(viewer: Viewer) -> Any:
    parts = [viewer.clause(VisitTask)]
    if viewer.worker is not None:
        parts.append(VisitTask.assigned_worker_id == viewer.worker.id)
    return sa.or_(*parts)


async def list_tasks(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    filters: TaskFilters,
    page: PageRequest,
) -> Page[VisitTask]:
    query = where_given(
        select(VisitTask).where(task_scope(viewer)),
        (VisitTask.status, filters.status),
        (VisitTask.kind, filters.kind),
        (VisitTask.assigned_worker_id, filters.worker_id),
        (VisitTask.community, filters.community),
    )
    return await keyset_page(uow.session, query, Keyset((VisitTask.due_at, VisitTask.id), descending=False), page)
