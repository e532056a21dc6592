"""Grid workers: who they are, which buildings they look after (assignments), and handing a grid over.
Use cases take a unit of work and never commit."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure_visible, visible_or_404
from minsheng.platform.errors import UniqueRule, conflict, not_found
from minsheng.platform.filters import where_given
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher, seal_phone_on
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer, active_assignments, sees_worker, supervises
from services.visits.models import (
    AssignmentCreate,
    Building,
    GridAssignment,
    GridWorker,
    GridWorkerCreate,
    Handover,
    HandoverResult,
    Need,
    NeedNote,
    TaskStatus,
    VisitTask,
)
from services.visits.places import community_by_code, compound_by_code

OPEN_NEED_STATES = ("open", "in_progress", "resolved")

GRID_WORKER_EXISTS = UniqueRule(
    GridWorker, ["subject"], "grid_worker_exists", "This account is already registered as a grid worker."
)


# --- grid workers -------------------------------------------------------------------------------------------


async def create_worker(uow: UnitOfWork, viewer: Viewer, data: GridWorkerCreate, cipher: FieldCipher) -> GridWorker:
    community = await community_by_code(uow, data.community)
    visible_or_404(community, lambda c: viewer.staff_covers(c.code), "community", data.community)
    dup = await uow.session.execute(select(GridWorker.id).where(GridWorker.subject == data.subject))
    if dup.first() is not None:
        raise GRID_WORKER_EXISTS.problem()
    worker = GridWorker(**data.model_dump())
    seal_phone_on(worker, cipher)
    uow.session.add(worker)
    return worker


async def get_worker(uow: UnitOfWork, viewer: Viewer, worker_id: UUID) -> GridWorker:
    worker = await uow.session.get(GridWorker, worker_id)
    return visible_or_404(worker, lambda w: sees_worker(viewer, w), "grid_worker", worker_id)


async def list_workers(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    page: PageRequest,
    community: str | None = None,
    active: bool | None = True,
) -> Page[GridWorker]:
    query = select(GridWorker)
    if not viewer.is_admin:
        communities = viewer.principal.scoped_values("community") if viewer.is_staff else set()
        query = query.where(col(GridWorker.community).in_(sorted(communities)))
    query = where_given(query, (GridWorker.community, community), (GridWorker.active, active))
    return await keyset_page(uow.session, query, Keyset.by_id(GridWorker), page)


async def add_assignment(uow: UnitOfWork, viewer: Viewer, worker: GridWorker, data: AssignmentCreate) -> GridAssignment:
    if not worker.active:
        raise conflict("grid_worker_inactive", "This grid worker has left; assign someone else.")
    compound = await compound_by_code(uow, data.compound)
    compound = visible_or_404(compound, lambda c: viewer.staff_covers(c.community, c.code), "compound", data.compound)
    if data.building_id is not None:
        building = await uow.session.get(Building, data.building_id)
        if building is None or building.compound != compound.code:
            raise not_found("building", data.building_id)
    current = await active_assignments(uow, worker.id)
    if any(a.compound == compound.code and a.building_id in (None, data.building_id) for a in current):
        raise conflict("already_assigned", "This worker already covers that place.")
    assignment = GridAssignment(
        worker_id=worker.id, community=compound.community, compound=compound.code, building_id=data.building_id
    )
    uow.session.add(assignment)
    return assignment


async def list_assignments(
    uow: UnitOfWork, worker: GridWorker, *, page: PageRequest, include_ended: bool = False
) -> Page[GridAssignment]:
    """A worker's places, oldest first (with ``include_ended``, their whole history)."""
    query = select(GridAssignment).where(GridAssignment.worker_id == worker.id)
    if not include_ended:
        query = query.where(col(GridAssignment.ended_at).is_(None))
    in_order_taken = Keyset((GridAssignment.started_at, GridAssignment.id), descending=False)
    return await keyset_page(uow.session, query, in_order_taken, page)


async def end_assignment(uow: UnitOfWork, viewer: Viewer, assignment_id: UUID) -> GridAssignment:
    assignment = await uow.session.get(GridAssignment, assignment_id)
    assignment = visible_or_404(assignment, lambda a: supervises(viewer, a), "assignment", assignment_id)
    if assignment.ended_at is None:
        assignment.ended_at = utcnow()
    return assignment


async def handover(uow: UnitOfWork, viewer: Viewer, worker: GridWorker, body: Handover) -> HandoverResult:
    """A grid worker leaves: their places, their open needs (as ledger owner) and their open visit tasks go
    to a successor in one step, each need noting the handover. The leaver is deactivated."""
    ensure_visible(viewer.staff_covers(worker.community), "grid_worker", worker.id)
    successor = visible_or_404(
        await uow.session.get(GridWorker, body.to_worker_id),
        lambda w: viewer.staff_covers(w.community),
        "grid_worker",
        body.to_worker_id,
    )
    if successor.id == worker.id or not successor.active:
        raise conflict("invalid_successor", "Hand over to another, active grid worker.")
    now = utcnow()
    theirs = {(a.compound, a.building_id) for a in await active_assignments(uow, successor.id)}
    moved = 0
    for a in await active_assignments(uow, worker.id):
        a.ended_at, a.handed_over_to = now, successor.id
        if (a.compound, a.building_id) not in theirs and (a.compound, None) not in theirs:
            uow.session.add(
                GridAssignment(
                    worker_id=successor.id,
                    community=a.community,
                    compound=a.compound,
                    building_id=a.building_id,
                    started_at=now,
                )
            )
        moved += 1
    needs = list(
        (
            await uow.session.execute(
                select(Need).where(Need.owner == worker.subject, col(Need.status).in_([*OPEN_NEED_STATES, "escalated"]))
            )
        ).scalars()
    )
    note = f"Handed over from {worker.name} to {successor.name}" + (f": {body.reason}" if body.reason else "")
    for need in needs:
        need.owner, need.owner_name, need.updated_at = successor.subject, successor.name, now
        uow.session.add(
            NeedNote(need_id=need.id, action="handover", actor=viewer.sub, actor_name=viewer.name, note=note)
        )
    tasks = await uow.session.execute(
        sa.update(VisitTask)
        .where(col(VisitTask.assigned_worker_id) == worker.id, col(VisitTask.status) == TaskStatus.open)
        .values(assigned_worker_id=successor.id, updated_at=now)
    )
    worker.active, worker.left_at = False, now
    return HandoverResult(
        from_worker_id=worker.id,
        to_worker_id=successor.id,
        assignments=moved,
        needs=len(needs),
        tasks=tasks.rowcount or 0,  # type: ignore[attr-defined]
    )


async def worker_for_place(uow: UnitOfWork, compound: str, building_id: UUID | None) -> GridWorker | None:
    """Who covers this door: a building assignment first, else the compound's."""
    rows = (
        await uow.session.execute(
            select(GridAssignment, GridWorker)
            .join(GridWorker, col(GridWorker.id) == GridAssignment.worker_id)
            .where(
                GridAssignment.compound == compound,
                col(GridAssignment.ended_at).is_(None),
                col(GridWorker.active).is_(True),
                sa.or_(col(GridAssignment.building_id).is_(None), col(GridAssignment.building_id) == building_id),
            )
            .order_by(col(GridAssignment.building_id).is_(None), col(GridAssignment.started_at))
        )
    ).all()
    return rows[0][1] if rows else None
