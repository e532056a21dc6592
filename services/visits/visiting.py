"""Visits and welfare checks.

A visit record moves the household's schedule (see ``cadence``), writes any needs heard at the door into the
ledger, and completes the household's open visit tasks; a welfare check (from a canteen absence alert) is
announced with ``WelfareCheckScheduled`` (naming the grid worker's account) and reports back with
``WelfareCheckCompleted``. All in the caller's one transaction. Staff's follow-up tasks are in ``tasks``, the
due list in ``due``, rounds in ``rounds``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import col, select

from minsheng.contracts.canteen import AbsenceAlert
from minsheng.contracts.visits import WelfareCheckCompleted, WelfareCheckScheduled
from minsheng.platform.access import ensure_changeable, visible_or_404
from minsheng.platform.coords import distance_m
from minsheng.platform.errors import invalid_field, wrong_status
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.photos import owned_photo_paths
from minsheng.platform.uow import UnitOfWork
from services.visits import config, ledger, schedule
from services.visits.access import Viewer, sees, writes
from services.visits.config import days, now
from services.visits.models import (
    Building,
    Household,
    Need,
    Outcome,
    Photo,
    Resident,
    ResidentStatus,
    TaskKind,
    TaskStatus,
    Visit,
    VisitCreate,
    VisitFilters,
    VisitTask,
)
from services.visits.places import get_household
from services.visits.workers import worker_for_place

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
        raise invalid_field("visited_at_naive", "visited_at", "Give visited_at with a time zone (e.g. +08:00 or Z).")
    if at > current + timedelta(minutes=5):
        raise invalid_field("visited_at_in_future", "visited_at", "A visit cannot be recorded ahead of time.")
    if at < current - days(config.get().backdate_max_days):
        raise invalid_field(
            "visited_at_too_old",
            "visited_at",
            _t("Visits older than {days} days cannot be recorded.", days=config.get().backdate_max_days),
        )
    if body.outcome != Outcome.visited and body.satisfaction is not None:
        raise invalid_field("satisfaction_without_visit", "satisfaction", "Only a visit that reached someone is rated.")
    if body.outcome == Outcome.not_home and body.needs:
        raise invalid_field("needs_without_contact", "needs", "Nobody was home: record needs when you reach someone.")
    if (body.latitude is None) != (body.longitude is None):
        raise invalid_field(
            "incomplete_location",
            "longitude" if body.longitude is None else "latitude",
            "Send both latitude and longitude, or neither.",
        )
    task: VisitTask | None = None
    if body.task_id is not None:
        task = await uow.session.get(VisitTask, body.task_id)
        if task is None or task.household_id != household.id:
            raise invalid_field("task_not_for_household", "task_id", "This visit task is not for this household.")
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


# --- welfare checks -----------------------------------------------------------------------------------------


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
