"""Care signals and life events: a regular diner who stops coming raises an absence alert (→ a welfare-check
visit); a resident who moved away or died stops being subsidised from the date it happened."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from minsheng.contracts.canteen import AbsenceAlert, FamilyContact, SubsidySuspended
from minsheng.contracts.visits import ResidentStatusChanged, WelfareCheckCompleted
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher, open_phone
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.cancellation import cancel_order
from services.canteen.models import (
    SERVED_STATUSES,
    AbsenceAlertRow,
    AlertStatus,
    Canteen,
    Diner,
    DinerStatus,
    FamilyMember,
    LineStatus,
    Menu,
    MenuStatus,
    Order,
    OrderStatus,
    ScanResult,
    SubsidyLine,
)

ALERTS = table_of(AbsenceAlertRow)
ORDERS = table_of(Order)
LINES = table_of(SubsidyLine)


def _away(diner: Diner, day: date) -> bool:
    return diner.away_from is not None and diner.away_until is not None and diner.away_from <= day <= diner.away_until


async def scan_absences(uow: UnitOfWork, fc: FieldCipher, today: date | None = None) -> ScanResult:
    """Raise one AbsenceAlert per absence spell of a regular diner; resolve alerts of diners who came back.

    Regular: ate (served or delivered) on at least ``regular_min_days`` of the ``regular_window_days`` ending on
    their last meal. Absent: ``absence_days`` service days since then (days their home canteen served, not
    counting days the family said they would be away). Safe to run in several replicas at once: the spell is
    unique per (diner, last meal day) and inserted with ON CONFLICT DO NOTHING."""
    s = config.get()
    today = today or config.today()
    earliest_last = today - timedelta(days=s.absence_days + 30)
    latest_last = today - timedelta(days=s.absence_days + 1)
    resolved = await _resolve_returned(uow)

    last_rows = await uow.session.execute(
        sa.select(ORDERS.c.diner_id, sa.func.max(ORDERS.c.meal_date))
        .where(ORDERS.c.status.in_(SERVED_STATUSES), ORDERS.c.meal_date >= earliest_last, ORDERS.c.meal_date < today)
        .group_by(ORDERS.c.diner_id)
        .having(sa.func.max(ORDERS.c.meal_date) <= latest_last)
    )
    last_meal: dict[UUID, date] = {d: last for d, last in last_rows}
    if not last_meal:
        return ScanResult(on=today, candidates=0, raised=0, resolved=resolved)
    diners = {
        d.id: d
        for d in (
            await uow.session.execute(
                select(Diner).where(col(Diner.id).in_(list(last_meal)), Diner.status == DinerStatus.active)
            )
        ).scalars()
    }
    already = {
        (d, last)
        for d, last in await uow.session.execute(
            sa.select(ALERTS.c.diner_id, ALERTS.c.last_meal_on).where(ALERTS.c.diner_id.in_(list(diners)))
        )
    }
    todo = {i: last_meal[i] for i in diners if (i, last_meal[i]) not in already}
    if not todo:
        return ScanResult(on=today, candidates=len(diners), raised=0, resolved=resolved)

    window_start = min(todo.values()) - timedelta(days=s.regular_window_days - 1)
    meal_days: dict[UUID, set[date]] = defaultdict(set)
    for diner_id, day in await uow.session.execute(
        sa.select(ORDERS.c.diner_id, ORDERS.c.meal_date)
        .distinct()
        .where(
            ORDERS.c.diner_id.in_(list(todo)), ORDERS.c.status.in_(SERVED_STATUSES), ORDERS.c.meal_date >= window_start
        )
    ):
        meal_days[diner_id].add(day)
    homes = {d.canteen_id for i, d in diners.items() if i in todo}
    service_days: dict[UUID, set[date]] = defaultdict(set)
    menus = table_of(Menu)
    for canteen_id, day in await uow.session.execute(
        sa.select(menus.c.canteen_id, menus.c.meal_date)
        .distinct()
        .where(
            menus.c.canteen_id.in_(list(homes)),
            menus.c.status == MenuStatus.published.value,
            menus.c.meal_date > min(todo.values()),
            menus.c.meal_date < today,
        )
    ):
        service_days[canteen_id].add(day)
    canteens = {
        c.id: c for c in (await uow.session.execute(select(Canteen).where(col(Canteen.id).in_(list(homes))))).scalars()
    }

    raised = 0
    now = config.now()
    for diner_id, last in sorted(todo.items()):
        diner = diners[diner_id]
        start = last - timedelta(days=s.regular_window_days - 1)
        regular = sum(1 for d in meal_days[diner_id] if start <= d <= last)
        if regular < s.regular_min_days:
            continue
        missed = [d for d in service_days[diner.canteen_id] if last < d < today and not _away(diner, d)]
        if len(missed) < s.absence_days:
            continue
        alert_id = uuid7()
        values = {
            "id": alert_id,
            "diner_id": diner.id,
            "canteen_id": diner.canteen_id,
            "resident_id": diner.resident_id,
            "last_meal_on": last,
            "days_absent": len(missed),
            "meals_in_window": regular,
            "status": AlertStatus.open.value,
            "raised_at": now,
        }
        insert = pg_insert(ALERTS) if uow.db.is_postgres else sqlite_insert(ALERTS)
        created = (
            await uow.session.execute(
                insert.values(**values)
                .on_conflict_do_nothing(index_elements=["diner_id", "last_meal_on"])
                .returning(ALERTS.c.id)
            )
        ).scalar_one_or_none()
        if created is None:
            continue  # another replica raised this spell first
        raised += 1
        canteen = canteens.get(diner.canteen_id)
        contacts = await _family_contacts(uow, diner, fc)
        uow.emit(
            AbsenceAlert(
                alert_id=alert_id,
                diner_id=diner.id,
                resident_id=diner.resident_id,
                canteen_id=diner.canteen_id,
                community=diner.community or (canteen.community if canteen else None),
                compound=diner.compound,
                last_meal_on=last,
                days_absent=len(missed),
                meals_last_30_days=regular,
                raised_at=now,
                family_contacts=contacts,
                id_number_hash=diner.id_number_hash,
            )
        )
    return ScanResult(on=today, candidates=len(diners), raised=raised, resolved=resolved)


async def resend_open_alerts(uow: UnitOfWork, diner: Diner, fc: FieldCipher) -> int:
    """The diner was just linked to a visits resident (or given an ID number): their open alerts go out again,
    now naming the resident, so the welfare check an earlier alert could not schedule is scheduled. Same
    ``alert_id``: the visits service schedules one check per alert however often it hears of it."""
    rows = (
        await uow.session.execute(
            sa.select(ALERTS).where(ALERTS.c.diner_id == diner.id, ALERTS.c.status == AlertStatus.open.value)
        )
    ).all()
    if not rows:
        return 0
    await uow.session.execute(
        sa.update(ALERTS)
        .where(ALERTS.c.diner_id == diner.id, ALERTS.c.status == AlertStatus.open.value)
        .values(resident_id=diner.resident_id)
    )
    canteen = await uow.session.get(Canteen, diner.canteen_id)
    contacts = await _family_contacts(uow, diner, fc)
    for row in rows:
        uow.emit(
            AbsenceAlert(
                alert_id=row.id,
                diner_id=diner.id,
                resident_id=diner.resident_id,
                canteen_id=row.canteen_id,
                community=diner.community or (canteen.community if canteen else None),
                compound=diner.compound,
                last_meal_on=row.last_meal_on,
                days_absent=row.days_absent,
                meals_last_30_days=row.meals_in_window,
                raised_at=row.raised_at,
                family_contacts=contacts,
                id_number_hash=diner.id_number_hash,
            )
        )
    return len(rows)


async def _family_contacts(uow: UnitOfWork, diner: Diner, fc: FieldCipher) -> list[FamilyContact]:
    """Who of the family notify may tell, with the phone in clear (declared personal data of the event; sealed
    at rest here)."""
    members = (await uow.session.execute(select(FamilyMember).where(FamilyMember.diner_id == diner.id))).scalars()
    return [
        FamilyContact(member_id=m.id, subject=m.subject, relation=m.relation, phone=open_phone(m, fc)) for m in members
    ]


async def _resolve_returned(uow: UnitOfWork) -> int:
    """Open alerts whose diner has eaten since: the spell is over."""
    came_back = sa.exists().where(
        ORDERS.c.diner_id == ALERTS.c.diner_id,
        ORDERS.c.meal_date > ALERTS.c.last_meal_on,
        ORDERS.c.status.in_(SERVED_STATUSES),
    )
    result = await uow.session.execute(
        sa.update(ALERTS)
        .where(ALERTS.c.status.in_([AlertStatus.open.value, AlertStatus.checked.value]), came_back)
        .values(status=AlertStatus.resolved.value, resolved_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_alerts(
    uow: UnitOfWork,
    who: Principal,
    page: PageRequest,
    *,
    canteen: Canteen | None,
    status: AlertStatus | None,
) -> Page[AbsenceAlertRow]:
    query = select(AbsenceAlertRow)
    if canteen is not None:
        query = query.where(AbsenceAlertRow.canteen_id == canteen.id)
    elif not who.is_admin:
        all_canteens = (await uow.session.execute(select(Canteen))).scalars()
        mine = [c.id for c in all_canteens if access.manages(who, c)]
        query = query.where(col(AbsenceAlertRow.canteen_id).in_(mine))
    if status is not None:
        query = query.where(AbsenceAlertRow.status == status)
    return await keyset_page(uow.session, query, Keyset((AbsenceAlertRow.raised_at, AbsenceAlertRow.id)), page)


# --- consumed events -----------------------------------------------------------------------------------------


async def apply_resident_status(uow: UnitOfWork, event: ResidentStatusChanged) -> int:
    """Moved/deceased → the subsidy stops from ``effective_date`` (lines from then on are withheld from the
    claim, future bookings are cancelled); active → it resumes. Matches by resident id or ID-number hash.
    Returns how many diners changed. Stale events (older than the last applied change) change nothing."""
    match = col(Diner.resident_id) == event.resident_id
    if event.id_number_hash:
        match = sa.or_(match, col(Diner.id_number_hash) == event.id_number_hash)
    query = select(Diner).where(match)
    if uow.db.is_postgres:
        query = query.with_for_update()
    changed = 0
    for diner in (await uow.session.execute(query)).scalars():
        if diner.status_changed_at is not None and event.changed_at <= diner.status_changed_at:
            continue
        if diner.resident_id is None:
            diner.resident_id = event.resident_id
        diner.status_changed_at = event.changed_at
        diner.updated_at = utcnow()
        changed += 1
        if event.status in ("moved", "deceased"):
            await _suspend(uow, diner, event)
        elif diner.status in (DinerStatus.suspended, DinerStatus.deceased) or diner.subsidy_suspended_from:
            diner.status = DinerStatus.active.value
            diner.subsidy_suspended_from = None
            diner.status_reason = f"resident active again from {event.effective_date}"
            await _move_lines(uow, diner, event.effective_date, LineStatus.withheld, LineStatus.claimed)
    return changed


async def _move_lines(uow: UnitOfWork, diner: Diner, since: date, old: LineStatus, new: LineStatus) -> None:
    """The diner's subsidy lines for meals from ``since`` on: withheld while suspended, claimed again after."""
    await uow.session.execute(
        sa.update(LINES)
        .where(LINES.c.diner_id == diner.id, LINES.c.status == old.value, LINES.c.meal_date >= since)
        .values(status=new.value)
    )


async def _suspend(uow: UnitOfWork, diner: Diner, event: ResidentStatusChanged) -> None:
    diner.status = DinerStatus.deceased.value if event.status == "deceased" else DinerStatus.suspended.value
    diner.subsidy_suspended_from = event.effective_date
    diner.status_reason = f"resident {event.status} on {event.effective_date}"
    await _move_lines(uow, diner, event.effective_date, LineStatus.claimed, LineStatus.withheld)
    # Seats are released in (date, slot) order, the order bookings claim them in: no lock-order deadlocks.
    pending = (
        select(Order)
        .where(Order.diner_id == diner.id, Order.status == OrderStatus.booked, Order.meal_date >= event.effective_date)
        .order_by(col(Order.meal_date), col(Order.slot))
    )
    if uow.db.is_postgres:
        pending = pending.with_for_update()
    cancelled = 0
    for order in (await uow.session.execute(pending)).scalars():
        await cancel_order(uow, order, reason=f"resident {event.status}", actor="system:visits")
        cancelled += 1
    canteen = await uow.session.get(Canteen, diner.canteen_id)
    family = (
        await uow.session.execute(
            select(FamilyMember.subject).where(FamilyMember.diner_id == diner.id).order_by(col(FamilyMember.subject))
        )
    ).scalars()
    uow.emit(
        SubsidySuspended(
            diner_id=diner.id,
            canteen_id=diner.canteen_id,
            canteen_name=canteen.name if canteen else None,
            reason="deceased" if event.status == "deceased" else "moved",
            effective_from=event.effective_date,
            cancelled_orders=cancelled,
            family_subjects=list(family),
            suspended_at=utcnow(),
        )
    )


async def record_welfare_check(uow: UnitOfWork, event: WelfareCheckCompleted) -> bool:
    if event.alert_id is None:
        return False
    alert = await uow.session.get(AbsenceAlertRow, event.alert_id, with_for_update=uow.db.is_postgres)
    if alert is None or alert.visit_id == event.visit_id:
        return False
    alert.visit_id, alert.outcome, alert.checked_at = event.visit_id, event.outcome, event.completed_at
    if alert.status == AlertStatus.open:
        alert.status = AlertStatus.checked.value
    return True


def ensure_staff(who: Principal) -> None:
    ensure(
        access.has_place_scope(who),
        Problem(403, "forbidden_scope", "Not allowed", "Needs a canteen or community scope."),
    )
