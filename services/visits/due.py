"""The due list: a worker's open visit tasks and the households due to be visited (overdue first)."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from sqlmodel import col, select

from minsheng.platform.access import visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer, active_assignments, sees_worker
from services.visits.config import today
from services.visits.models import DueFilters, GridWorker, Household, TaskStatus, VisitTask
from services.visits.tasks import task_scope


async def viewer_for_worker(uow: UnitOfWork, viewer: Viewer, worker_id: UUID) -> Viewer:
    """A staff member looking at one worker's list sees exactly that worker's places (within their scope)."""
    worker = visible_or_404(
        await uow.session.get(GridWorker, worker_id), lambda w: sees_worker(viewer, w), "grid_worker", worker_id
    )
    as_worker = Viewer(Principal(sub=worker.subject, roles=frozenset()), worker=worker)
    for a in await active_assignments(uow, worker.id):
        if a.building_id is None:
            as_worker.whole_compounds.add(a.compound)
        else:
            as_worker.buildings.add(a.building_id)
    return as_worker


async def due_list(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    filters: DueFilters,
    page: PageRequest,
) -> tuple[list[VisitTask], Page[Household]]:
    """Open visit tasks (most urgent first), then households due by ``today + within_days`` (overdue first).
    Tasks come with the first page only."""
    day = today()
    query = select(Household).where(viewer.clause(Household), col(Household.next_due_on).is_not(None))
    query = (
        query.where(col(Household.next_due_on) < day)
        if filters.overdue_only
        else query.where(col(Household.next_due_on) <= day + timedelta(days=filters.within_days))
    )
    if filters.compound:
        query = query.where(Household.compound == filters.compound)
    by_due_day = Keyset((Household.next_due_on, Household.id), kinds=(date, UUID), descending=False)
    households = await keyset_page(uow.session, query, by_due_day, page)
    tasks: list[VisitTask] = []
    if not page.cursor:
        tq = select(VisitTask).where(task_scope(viewer), VisitTask.status == TaskStatus.open)
        if filters.compound:
            tq = tq.where(VisitTask.compound == filters.compound)
        tq = tq.order_by(col(VisitTask.urgent).desc(), col(VisitTask.due_at), col(VisitTask.id)).limit(200)
        tasks = list((await uow.session.execute(tq)).scalars())
    return tasks, households
