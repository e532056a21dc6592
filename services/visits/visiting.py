"""Visits, visit tasks, due lists and rounds.

A visit record moves the household's schedule (see ``cadence``), writes any needs heard at the door into the
ledger, and completes the household's open visit tasks; a welfare check (from a canteen absence alert) is
announced with ``WelfareCheckScheduled`` (naming the grid worker's account) and reports back with
``WelfareCheckCompleted``. All in the caller's one transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.canteen import AbsenceAlert
from minsheng.contracts.visits import WelfareCheckCompleted, WelfareCheckScheduled
from minsheng.platform.access import ensure, ensure_changeable, ensure_visible, forbidden, visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.coords import distance_m
from minsheng.platform.errors import Problem, invalid, wrong_status
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import Message, _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.photos import owned_photo_paths
from minsheng.platform.uow import UnitOfWork
from services.visits import config, ledger, schedule
from services.visits.access import (
    Viewer,
    active_assignments,
    sees,
    sees_round,
    sees_task,
    sees_worker,
    supervises,
    writes,
)
from services.visits.config import days, now, start_of_local_day, today
from services.visits.models import (
    Building,
    DueFilters,
    GridWorker,
    Household,
    Need,
    Outcome,
    Photo,
    Resident,
    ResidentStatus,
    RoundCreate,
    TaskCreate,
    TaskFilters,
    TaskKind,
    TaskPublic,
    TaskStatus,
    Visit,
    VisitCreate,
    VisitFilters,
    VisitRound,
    VisitTask,
)
from services.visits.places import get_household
from services.visits.workers import worker_for_place


def _invalid(code: str, field: str, detail: Message) -> Problem:
    return invalid(code, "The request is not valid", detail, field=field, message=str(detail))


def task_public(t: VisitTask) -> TaskPublic:
    public = TaskPublic.model_validate(t, from_attributes=True)
    public.overdue = t.status == TaskStatus.open and t.due_at < now()
    return public


# --- visits -------------------------------------------------------------------------------------------------


def apply_visit(h: Household, outcome: Outcome, at: datetime) -> None:
    """Move the household's visiting history; a visit synced late never moves it backwards."""
    if h.last_attempt_at is not None and at < h.last_attempt_at:
        if outcome == Outcome.visited and (h.last_visited_at is None or at > h.last_visited_at):
            h.last_visited_at = at
        return
    h.last_attempt_at, h.last_outcome = at, outcome
    if outcome == Outcome.visited:
        h.last_visited_at, h.failed_attempts = at, 0
    elif outcome == Outcome.not_home:
        h.failed_attempts += 1
    else:
        h.failed_attempts = 0


async def record_visit(uow: UnitOfWork, viewer: Viewer, body: VisitCreate) -> tuple[Visit, list[Need], list[UUID]]:
    household = await get_household(uow, viewer, body.household_id, for_update=True)
    ensure_changeable(sees(viewer, household), writes(viewer, household), "household", household.id)
    current = now()
    at = body.visited_at or current
    if at.tzinfo is None:
        raise _invalid("visited_at_naive", "visited_at", "Give visited_at with a time zone (e.g. +08:00 or Z).")
    if at > current + timedelta(minutes=5):
        raise _invalid("visited_at_in_future", "visited_at", "A visit cannot be recorded ahead of time.")
    if at < current - days(config.get().backdate_max_days):
        raise _invalid(
            "visited_at_too_old",
            "visited_at",
            _t("Visits older than {days} days cannot be recorded.", days=config.get().backdate_max_days),
        )
    if body.outcome != Outcome.visited and body.satisfaction is not None:
        raise _invalid("satisfaction_without_visit", "satisfaction", "Only a visit that reached someone is rated.")
    if body.outcome == Outcome.not_home and body.needs:
        raise _invalid("needs_without_contact", "needs", "Nobody was home: record needs when you reach someone.")
    if (body.latitude is None) != (body.longitude is None):
        raise _invalid(
            "incomplete_location",
            "longitude" if body.longitude is None else "latitude",
            "Send both latitude and longitude, or neither.",
        )
    task: VisitTask | None = None
    if body.task_id is not None:
        task = await uow.session.get(VisitTask, body.task_id)
        if task is None or task.household_id != household.id:
            raise _invalid("task_not_for_household", "task_id", "This visit task is not for this household.")
        if task.status != TaskStatus.open:
            raise wrong_status(
                "task_not_open", _t("The visit task is {status}.", status=task.status), current_status=task.status
            )

    visit = Visit(
        household_id=household.id,
        community=household.community,
        compound=household.compound,
        building_id=household.building_id,
        worker_id=viewer.worker.id if viewer.worker else None,
        recorded_by=viewer.sub,
        recorded_by_name=viewer.name,
        visitors=body.visitors,
        visited_at=at,
        outcome=body.outcome,
        latitude=body.latitude,
        longitude=body.longitude,
        notes=body.notes,
        satisfaction=body.satisfaction,
        task_id=body.task_id,
        photo_urls=await owned_photo_paths(uow, Photo, "visits", viewer.sub, body.photo_ids),
    )
    if body.latitude is not None and body.longitude is not None:
        building = await uow.session.get(Building, household.building_id)
        if building is not None and building.latitude is not None and building.longitude is not None:
            visit.distance_m = round(
                distance_m(body.latitude, body.longitude, building.latitude, building.longitude), 1
            )
            visit.far_from_home = visit.distance_m > config.get().checkin_max_distance_m
    uow.session.add(visit)

    apply_visit(household, body.outcome, at)
    await schedule.reschedule(uow, household)

    needs = [await ledger.raise_need(uow, viewer, household, n, visit_id=visit.id) for n in body.needs]
    completed = await _complete_tasks(uow, household, visit, task)
    return visit, needs, completed


async def _complete_tasks(uow: UnitOfWork, household: Household, visit: Visit, named: VisitTask | None) -> list[UUID]:
    """A door knocked on answers the household's open tasks: welfare checks report back to the canteen on
    every attempt; a task closes once someone was reached (or refused)."""
    open_tasks = list(
        (
            await uow.session.execute(
                select(VisitTask).where(VisitTask.household_id == household.id, VisitTask.status == TaskStatus.open)
            )
        ).scalars()
    )
    if named is not None and named not in open_tasks:
        open_tasks.append(named)
    reached = visit.outcome in (Outcome.visited, Outcome.refused)
    done: list[UUID] = []
    for task in open_tasks:
        task.attempts += 1
        task.updated_at = utcnow()
        if reached:
            task.status, task.visit_id, task.completed_at = TaskStatus.done, visit.id, visit.visited_at
            done.append(task.id)
        if task.kind == TaskKind.welfare_check:
            uow.emit(
                WelfareCheckCompleted(
                    visit_id=visit.id,
                    resident_id=task.resident_id,
                    alert_id=task.alert_id,
                    outcome=visit.outcome,  # type: ignore[arg-type]
                    completed_at=visit.visited_at,
                )
            )
    return done


async def get_visit(uow: UnitOfWork, viewer: Viewer, visit_id: UUID) -> Visit:
    visit = await uow.session.get(Visit, visit_id)
    return visible_or_404(visit, lambda v: sees(viewer, v, v.household_id), "visit", visit_id)


async def list_visits(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    filters: VisitFilters,
    page: PageRequest,
) -> Page[Visit]:
    query = where_given(
        select(Visit).where(viewer.clause(Visit, household_col=Visit.household_id)),
        (Visit.household_id, filters.household_id),
        (Visit.worker_id, filters.worker_id),
        (Visit.community, filters.community),
        (Visit.compound, filters.compound),
        (Visit.outcome, filters.outcome),
        (Visit.far_from_home, filters.far_from_home),
    )
    if filters.since:
        query = query.where(col(Visit.visited_at) >= filters.since)
    if filters.until:
        query = query.where(col(Visit.visited_at) < filters.until)
    return await keyset_page(uow.session, query, Keyset((Visit.visited_at, Visit.id)), page)


async def needs_of_visits(uow: UnitOfWork, visit_ids: list[UUID]) -> dict[UUID, list[Need]]:
    out: dict[UUID, list[Need]] = {i: [] for i in visit_ids}
    if visit_ids:
        rows = await uow.session.execute(
            select(Need).where(col(Need.visit_id).in_(visit_ids)).order_by(col(Need.created_at))
        )
        for n in rows.scalars():
            if n.visit_id is not None:
                out[n.visit_id].append(n)
    return out


# --- tasks --------------------------------------------------------------------------------------------------


async def welfare_check_for(uow: UnitOfWork, alert: AbsenceAlert) -> VisitTask | None:
    """A canteen regular stopped coming: an urgent welfare check at their door, assigned to the grid worker
    who covers it. Idempotent on the alert. The resident is the linked one, else the one whose keyed ID-number
    hash the alert carries; alerts for residents we do not know, or who moved away or died, are not ours."""
    if alert.resident_id is None and not alert.id_number_hash:
        return None
    found = await uow.session.execute(select(VisitTask.id).where(VisitTask.alert_id == alert.alert_id))
    if found.first() is not None:
        return None
    resident = await uow.session.get(Resident, alert.resident_id) if alert.resident_id is not None else None
    if resident is None and alert.id_number_hash:
        # Not linked (yet): the same person by the keyed hash of the ID number both services hold.
        resident = (
            (await uow.session.execute(select(Resident).where(Resident.id_number_hash == alert.id_number_hash)))
            .scalars()
            .first()
        )
    if resident is None or resident.status != ResidentStatus.active:
        return None
    household = await uow.session.get(Household, resident.household_id)
    if household is None:
        return None
    worker = await worker_for_place(uow, household.compound, household.building_id)
    last_meal = alert.last_meal_on.isoformat()
    task = VisitTask(
        kind=TaskKind.welfare_check,
        household_id=household.id,
        resident_id=resident.id,
        community=household.community,
        compound=household.compound,
        building_id=household.building_id,
        urgent=True,
        source="canteen",
        alert_id=alert.alert_id,
        created_by="canteen",
        reason=f"Canteen regular absent {alert.days_absent} days (last meal {last_meal}, "
        f"{alert.meals_last_30_days} meals in the last 30 days)",
        due_at=alert.raised_at + timedelta(hours=config.get().welfare_check_due_hours),
        assigned_worker_id=worker.id if worker else None,
    )
    uow.session.add(task)
    uow.emit(  # the grid worker hears of it at once (notify), rather than at their next look at the task list
        WelfareCheckScheduled(
            task_id=task.id,
            alert_id=alert.alert_id,
            resident_id=resident.id,
            household_id=household.id,
            community=household.community,
            compound=household.compound,
            worker_id=worker.id if worker else None,
            worker_subject=worker.subject if worker else None,
            days_absent=alert.days_absent,
            last_meal_on=alert.last_meal_on,
            due_at=task.due_at,
            scheduled_at=task.created_at,
        )
    )
    return task


async def create_task(uow: UnitOfWork, viewer: Viewer, body: TaskCreate) -> VisitTask:
    household = await get_household(uow, viewer, body.household_id)
    ensure(supervises(viewer, household), forbidden("Community staff ask for follow-up visits."))
    if body.resident_id is not None:
        resident = await uow.session.get(Resident, body.resident_id)
        if resident is None or resident.household_id != household.id:
            raise _invalid("resident_not_in_household", "resident_id", "The resident is not in this household.")
    if body.due_at is not None and body.due_at < now():
        raise _invalid("due_at_in_past", "due_at", "The due time has passed.")
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


def _task_scope(viewer: Viewer) -> Any:
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
        select(VisitTask).where(_task_scope(viewer)),
        (VisitTask.status, filters.status),
        (VisitTask.kind, filters.kind),
        (VisitTask.assigned_worker_id, filters.worker_id),
        (VisitTask.community, filters.community),
    )
    return await keyset_page(uow.session, query, Keyset((VisitTask.due_at, VisitTask.id), descending=False), page)


# --- due lists ----------------------------------------------------------------------------------------------


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
        tq = select(VisitTask).where(_task_scope(viewer), VisitTask.status == TaskStatus.open)
        if filters.compound:
            tq = tq.where(VisitTask.compound == filters.compound)
        tq = tq.order_by(col(VisitTask.urgent).desc(), col(VisitTask.due_at), col(VisitTask.id)).limit(200)
        tasks = list((await uow.session.execute(tq)).scalars())
    return tasks, households


# --- rounds -------------------------------------------------------------------------------------------------


async def create_round(uow: UnitOfWork, viewer: Viewer, body: RoundCreate) -> VisitRound:
    if body.ends_on < body.starts_on:
        raise _invalid("round_ends_before_start", "ends_on", "A round ends on or after the day it starts.")
    ensure(
        body.community is not None or viewer.is_admin,
        forbidden("Only district administrators start a district-wide round."),
    )
    if body.community is not None:
        ensure_visible(viewer.staff_covers(body.community), "community", body.community)
    rnd = VisitRound(**body.model_dump(), created_by=viewer.sub)
    uow.session.add(rnd)
    return rnd


async def get_round(uow: UnitOfWork, viewer: Viewer, round_id: UUID) -> VisitRound:
    rnd = await uow.session.get(VisitRound, round_id)
    return visible_or_404(rnd, lambda r: sees_round(viewer, r), "round", round_id)


async def list_rounds(
    uow: UnitOfWork, viewer: Viewer, *, page: PageRequest, community: str | None = None
) -> Page[VisitRound]:
    query = select(VisitRound)
    if not viewer.is_admin:
        mine = viewer.principal.scoped_values("community") if viewer.is_staff else set()
        if viewer.worker is not None:
            mine.add(viewer.worker.community)
        query = query.where(sa.or_(col(VisitRound.community).is_(None), col(VisitRound.community).in_(sorted(mine))))
    if community:
        query = query.where(VisitRound.community == community)
    latest_first = Keyset((VisitRound.starts_on, VisitRound.id), kinds=(date, UUID))
    return await keyset_page(uow.session, query, latest_first, page)


def window(rnd: VisitRound) -> tuple[datetime, datetime]:
    return start_of_local_day(rnd.starts_on), start_of_local_day(rnd.ends_on + timedelta(days=1))
