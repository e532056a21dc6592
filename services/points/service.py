"""Use cases of the points service. They take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.points import URGENT_HAZARDS, HazardReported, PointsPosted
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.uow import UnitOfWork
from services.points.models import (
    EntryKind,
    HazardReport,
    HazardReportCreate,
    HazardStatus,
    LedgerEntry,
    Rider,
    RiderBalance,
    RiderCreate,
    RiderStatus,
)

# Points a verified hazard report earns, by category (a real report of a fire matters most).
HAZARD_POINTS: dict[str, int] = {"fire": 20, "gas_leak": 20, "water_leak": 15, "road": 10, "other": 5}


# --- riders -------------------------------------------------------------------------------------------------

async def register_rider(uow: UnitOfWork, subject: str, data: RiderCreate) -> Rider:
    existing = (await uow.session.execute(select(Rider).where(Rider.subject == subject))).scalar_one_or_none()
    if existing is not None:
        raise conflict("rider_already_registered", "This account is already registered as a rider.",
                       rider_id=str(existing.id))
    rider = Rider(subject=subject, **data.model_dump())
    uow.session.add(rider)
    await uow.session.flush()
    uow.session.add(RiderBalance(rider_id=rider.id, balance=0))
    return rider


async def rider_by_subject(uow: UnitOfWork, subject: str) -> Rider:
    rider = (await uow.session.execute(select(Rider).where(Rider.subject == subject))).scalar_one_or_none()
    if rider is None:
        raise Problem(404, "rider_not_registered", "Not registered as a rider",
                      "Register first with POST /points/riders.")
    return rider


def ensure_active(rider: Rider) -> None:
    if rider.status == RiderStatus.suspended:
        raise Problem(403, "rider_suspended", "Rider suspended", "A suspended rider cannot do this.")


# --- hazard reports -----------------------------------------------------------------------------------------

async def report_hazard(uow: UnitOfWork, rider: Rider, data: HazardReportCreate) -> HazardReport:
    ensure_active(rider)
    report = HazardReport(rider_id=rider.id, urgent=data.category in URGENT_HAZARDS, **data.model_dump())
    uow.session.add(report)
    uow.emit(HazardReported(
        report_id=report.id, rider_id=rider.id, category=data.category, urgent=report.urgent,
        description=data.description, latitude=data.latitude, longitude=data.longitude, address=data.address,
        community=data.community or rider.community, compound=data.compound, photo_urls=data.photo_urls,
        reported_at=report.created_at,
    ))
    return report


async def get_report(uow: UnitOfWork, rider: Rider, report_id: UUID) -> HazardReport:
    report = await uow.session.get(HazardReport, report_id)
    if report is None or report.rider_id != rider.id:
        raise not_found("hazard_report", report_id)
    return report


async def list_reports(uow: UnitOfWork, rider: Rider, *, limit: int, cursor: str | None,
                       status: HazardStatus | None = None) -> Page[HazardReport]:
    query = select(HazardReport).where(HazardReport.rider_id == rider.id)
    if status is not None:
        query = query.where(HazardReport.status == status)
    if cursor:
        created, ident = decode_cursor(cursor, type(utcnow()), UUID)
        query = query.where(sa.tuple_(HazardReport.created_at, HazardReport.id) < sa.tuple_(created, ident))
    query = query.order_by(col(HazardReport.created_at).desc(), col(HazardReport.id).desc()).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda r: encode_cursor(r.created_at, r.id))


async def report_for_issue(uow: UnitOfWork, report_id: str) -> HazardReport | None:
    try:
        ident = UUID(report_id)
    except ValueError:
        return None
    return await uow.session.get(HazardReport, ident, with_for_update=uow.db.is_postgres)


# --- ledger ---------------------------------------------------------------------------------------------------

async def balance_of(uow: UnitOfWork, rider_id: UUID) -> RiderBalance:
    balance = await uow.session.get(RiderBalance, rider_id)
    if balance is None:
        raise not_found("rider", rider_id)
    return balance


async def post_entry(
    uow: UnitOfWork, *, rider_id: UUID, kind: EntryKind, amount: int, cause_type: str, cause_id: str,
    event_id: str | None = None, note: str | None = None,
) -> LedgerEntry | None:
    """Append one ledger entry and move the balance, in one transaction. Idempotent on the cause: posting
    the same (cause, kind) again returns None and changes nothing. Never lets the balance go below zero."""
    already = await uow.session.execute(
        select(col(LedgerEntry.id)).where(
            LedgerEntry.cause_type == cause_type, LedgerEntry.cause_id == cause_id, LedgerEntry.kind == kind
        )
    )
    if already.first() is not None:
        return None
    balances = RiderBalance.__table__  # type: ignore[attr-defined]
    new_balance = (await uow.session.execute(
        sa.update(balances)
        .where(balances.c.rider_id == rider_id, balances.c.balance + amount >= 0)
        .values(balance=balances.c.balance + amount, updated_at=utcnow())
        .returning(balances.c.balance)
    )).scalar_one_or_none()
    if new_balance is None:
        current = await uow.session.get(RiderBalance, rider_id)
        if current is None:
            raise not_found("rider", rider_id)
        raise conflict("insufficient_points", f"Balance {current.balance} is less than {-amount}.",
                       balance=current.balance)
    entry = LedgerEntry(rider_id=rider_id, kind=kind, amount=amount, balance_after=new_balance,
                        cause_type=cause_type, cause_id=cause_id, event_id=event_id, note=note)
    uow.session.add(entry)
    uow.emit(PointsPosted(entry_id=entry.id, rider_id=rider_id, kind=kind.value, amount=amount,
                          balance_after=new_balance, cause_type=cause_type, cause_id=cause_id,
                          posted_at=entry.created_at))
    return entry


async def statement(uow: UnitOfWork, rider_id: UUID, *, limit: int, cursor: str | None) -> Page[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.rider_id == rider_id)
    if cursor:
        created, ident = decode_cursor(cursor, type(utcnow()), UUID)
        query = query.where(sa.tuple_(LedgerEntry.created_at, LedgerEntry.id) < sa.tuple_(created, ident))
    query = query.order_by(col(LedgerEntry.created_at).desc(), col(LedgerEntry.id).desc()).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda e: encode_cursor(e.created_at, e.id))


# --- hazard report outcomes (driven by issue events) ----------------------------------------------------------

async def award_for_verified_report(uow: UnitOfWork, report: HazardReport, event_id: str) -> None:
    entry = await post_entry(
        uow, rider_id=report.rider_id, kind=EntryKind.earned, amount=HAZARD_POINTS[report.category],
        cause_type="hazard_report", cause_id=str(report.id), event_id=event_id,
        note=f"Verified {report.category} report",
    )
    if entry is not None:
        report.points_awarded += entry.amount


async def reverse_award(uow: UnitOfWork, report: HazardReport, event_id: str, reason: str) -> None:
    """A report found false loses what it earned — as much as the balance still holds (never below zero)."""
    if report.points_awarded <= 0:
        return
    balance = await balance_of(uow, report.rider_id)
    take_back = min(report.points_awarded, balance.balance)
    if take_back == 0:
        return
    entry = await post_entry(
        uow, rider_id=report.rider_id, kind=EntryKind.reversed, amount=-take_back,
        cause_type="hazard_report", cause_id=str(report.id), event_id=event_id, note=reason[:500],
    )
    if entry is not None:
        report.points_awarded -= take_back


def move_report(report: HazardReport, status: HazardStatus, issue_status: str) -> None:
    report.status = status
    report.issue_status = issue_status
    report.updated_at = utcnow()
