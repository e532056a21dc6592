"""Hazard reports riders file (fire, gas and water leaks go on to the issues service as urgent issues), the
duplicate check, and what the issue's outcome does to the report and the rider's points. Use cases take a unit
of work and never commit."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.points import URGENT_HAZARDS, HazardReported
from minsheng.platform.access import visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.coords import distance_m
from minsheng.platform.errors import conflict
from minsheng.platform.filters import where_given
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config, ledger
from services.points.access import covers_report, filed_report
from services.points.models import (
    EntryKind,
    HazardReport,
    HazardReportCreate,
    HazardReportFilters,
    HazardReportPublic,
    HazardStatus,
    Rider,
)
from services.points.riders import RIDERS, RiderSummary, ensure_active, not_registered

# --- hazard reports -----------------------------------------------------------------------------------------


def _same_place(report: Any, data: HazardReportCreate, radius: float) -> bool:
    if None not in (report.latitude, report.longitude, data.latitude, data.longitude):
        return distance_m(report.latitude, report.longitude, data.latitude, data.longitude) <= radius  # type: ignore[arg-type]
    if report.address and data.address:
        return report.address.strip().casefold() == data.address.strip().casefold()
    return bool(report.compound and report.compound == data.compound)


_REPORTS: sa.Table = table_of(HazardReport)
_DUPLICATE_COLUMNS = (
    _REPORTS.c.id,
    _REPORTS.c.rider_id,
    _REPORTS.c.duplicate_of,
    _REPORTS.c.latitude,
    _REPORTS.c.longitude,
    _REPORTS.c.address,
    _REPORTS.c.compound,
    _REPORTS.c.created_at,
)


def _bound(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


def _place_shape(data: HazardReportCreate, radius: float) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Which place condition a new report needs (a small key: ``_duplicate_query`` builds one statement per
    key) and its bound values. With coordinates: a bounding box a little larger than the radius — ``lat``
    (a band only, near the poles), ``plain`` or ``wrap`` (the box crosses the antimeridian). Without: whether
    the report has an address and a compound."""
    if data.latitude is not None and data.longitude is not None:
        dlat = math.degrees(radius / 6_371_000) * 1.01 + 1e-6
        lat_lo, lat_hi = data.latitude - dlat, data.latitude + dlat
        params: dict[str, Any] = {"lat_lo": lat_lo, "lat_hi": lat_hi}
        widest = max(abs(lat_lo), abs(lat_hi))
        coslat = math.cos(math.radians(widest)) if widest < 89.0 else 0.0
        mode = "lat"
        if coslat > 0:
            dlng = dlat / coslat
            if dlng < 180:
                lng_lo, lng_hi = data.longitude - dlng, data.longitude + dlng
                if lng_lo < -180:
                    mode, params["lng_lo"], params["lng_hi"] = "wrap", lng_lo + 360, lng_hi
                elif lng_hi > 180:
                    mode, params["lng_lo"], params["lng_hi"] = "wrap", lng_lo, lng_hi - 360
                else:
                    mode, params["lng_lo"], params["lng_hi"] = "plain", lng_lo, lng_hi
        return ("box", mode), params
    return ("text", bool(data.address), bool(data.compound)), {"compound": data.compound}


def _place_filter(shape: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """A WHERE condition no row that ``_same_place`` accepts can fail. With coordinates: inside the bounding
    box, or a row without coordinates (those are compared by address or compound). Without: rows whose
    address or compound could match."""
    lat, lng = _REPORTS.c.latitude, _REPORTS.c.longitude
    if shape[0] == "box":
        in_box: sa.ColumnElement[bool] = lat.between(_bound("lat_lo", lat), _bound("lat_hi", lat))
        if shape[1] == "plain":
            in_box = sa.and_(in_box, lng.between(_bound("lng_lo", lng), _bound("lng_hi", lng)))
        elif shape[1] == "wrap":
            in_box = sa.and_(in_box, sa.or_(lng >= _bound("lng_lo", lng), lng <= _bound("lng_hi", lng)))
        return sa.or_(in_box, lat.is_(None), lng.is_(None))
    # No coordinates to compare: the address decides when both have one, else the compound.
    _, has_address, has_compound = shape
    address = _REPORTS.c.address
    no_address = sa.or_(address.is_(None), address == "")
    by_compound = (
        sa.and_(_REPORTS.c.compound == _bound("compound", _REPORTS.c.compound), *([no_address] if has_address else []))
        if has_compound
        else None
    )
    if has_address:
        with_address = sa.and_(address.is_not(None), address != "")
        return with_address if by_compound is None else sa.or_(with_address, by_compound)
    return by_compound if by_compound is not None else sa.false()


@functools.cache
def _duplicate_query(shape: tuple[Any, ...]) -> sa.Select[Any]:
    """Built once per place shape; category, window start and the box are bound parameters."""
    return (
        sa.select(*_DUPLICATE_COLUMNS)
        .where(
            _REPORTS.c.category == _bound("category", _REPORTS.c.category),
            _REPORTS.c.created_at >= _bound("since", _REPORTS.c.created_at),
            _place_filter(shape),
        )
        .order_by(_REPORTS.c.created_at, _REPORTS.c.id)
        .limit(200)
    )


def _duplicate_params(data: HazardReportCreate) -> tuple[tuple[Any, ...], dict[str, Any], float]:
    settings = config.get()
    radius = settings.duplicate_radius_m
    since = utcnow() - timedelta(minutes=settings.duplicate_window_minutes)
    shape, params = _place_shape(data, radius)
    return shape, {"category": data.category, "since": since, **params}, radius


async def find_duplicate(uow: UnitOfWork, data: HazardReportCreate) -> list[Any]:
    """Reports of the same category at the same place within the time window, oldest first (rows of
    ``_DUPLICATE_COLUMNS``). Category, time window and a bounding box are in the WHERE clause (index
    ``ix_hazard_reports_category_created``); the exact distance is checked here, on the few rows left."""
    shape, params, radius = _duplicate_params(data)
    rows = await uow.fetch(_duplicate_query(shape), params)
    return [r for r in rows if _same_place(r, data, radius)]


@functools.cache
def _rider_and_candidates(shape: tuple[Any, ...]) -> sa.Select[Any]:
    """The rider of ``subject`` and ``_duplicate_query`` in one statement: one row per candidate report, each
    with the rider's columns (``me``, ``my_status``, ``my_community``); one row with NULL candidate columns when
    there is none; no row when the subject is not a rider."""
    candidates = _duplicate_query(shape).subquery("candidates")
    return (
        sa.select(
            RIDERS.c.id.label("me"),
            RIDERS.c.status.label("my_status"),
            RIDERS.c.community.label("my_community"),
            *candidates.c,
        )
        .select_from(RIDERS.outerjoin(candidates, sa.true()))
        .where(RIDERS.c.subject == sa.bindparam("subject"))
        .order_by(candidates.c.created_at, candidates.c.id)
    )


async def reporting_rider(uow: UnitOfWork, subject: str, data: HazardReportCreate) -> tuple[RiderSummary, list[Any]]:
    """The reporting rider (404 ``rider_not_registered`` as ``rider_by_subject``) and ``find_duplicate``'s
    answer for a new report, in one round trip."""
    shape, params, radius = _duplicate_params(data)
    rows = await uow.fetch(_rider_and_candidates(shape), {"subject": subject, **params})
    if not rows:
        raise not_registered()
    rider = RiderSummary(rows[0].me, rows[0].my_status, rows[0].my_community)
    return rider, [r for r in rows if r.id is not None and _same_place(r, data, radius)]


def progress_step(status: str, note: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """One step of a report's ``progress`` as stored (what ``ProgressStep`` reads back)."""
    return {"status": status, "at": (at or utcnow()).isoformat(), "note": note}


def _step(report: HazardReport, status: str, note: str | None = None) -> None:
    report.progress = [*report.progress, progress_step(status, note)]


async def report_hazard(
    uow: UnitOfWork, rider: Rider | RiderSummary, data: HazardReportCreate, duplicates: list[Any] | None = None
) -> HazardReportPublic:
    """Record and acknowledge at once; forward to the issues service by event. The same rider reporting the
    same hazard again is told it is already reported (409); another rider's report of it is kept, marked as
    a duplicate of the first, and forwarded so the issues service can attach it to the same issue.

    ``duplicates``: what ``find_duplicate`` answers, when the caller has it already (``reporting_rider``).
    The row is a Core INSERT written at commit in the outbox row's statement (no ORM object to build and flush,
    no round trip of its own); the answer is built from the same values."""
    ensure_active(rider)
    duplicate_of: UUID | None = None
    for earlier in duplicates if duplicates is not None else await find_duplicate(uow, data):
        if earlier.rider_id == rider.id:
            raise conflict(
                "duplicate_report", "You reported this hazard already; follow it there.", duplicate_of=str(earlier.id)
            )
        duplicate_of = duplicate_of or earlier.duplicate_of or earlier.id
    now = utcnow()
    urgent = data.category in URGENT_HAZARDS
    community = data.community or rider.community
    note = "Received and forwarded" + (" (urgent)" if urgent else "")
    values: dict[str, Any] = {
        **data.model_dump(exclude={"photo_ids"}),
        "community": community,
        "id": uuid7(),
        "rider_id": rider.id,
        "urgent": urgent,
        "status": HazardStatus.submitted.value,
        "issue_id": None,
        "issue_status": None,
        "duplicate_of": duplicate_of,
        "false_report": False,
        "progress": [progress_step(HazardStatus.submitted.value, note, now)],
        "points_awarded": 0,
        "created_at": now,
        "updated_at": now,
    }
    uow.insert_at_commit(_REPORTS, values)  # nothing reads it back: written with the outbox row, one statement
    uow.emit(
        HazardReported(
            report_id=values["id"],
            rider_id=rider.id,
            category=data.category,
            urgent=urgent,
            description=data.description,
            latitude=data.latitude,
            longitude=data.longitude,
            address=data.address,
            community=community,
            compound=data.compound,
            photo_urls=data.photo_urls,
            reported_at=now,
            duplicate_of=duplicate_of,
        )
    )
    return HazardReportPublic.model_validate(values)


async def get_report(uow: UnitOfWork, rider: Rider, report_id: UUID) -> HazardReport:
    report = await uow.session.get(HazardReport, report_id)
    return visible_or_404(report, lambda r: filed_report(rider, r), "hazard_report", report_id)


async def get_report_as_staff(uow: UnitOfWork, who: Principal, report_id: UUID) -> HazardReport:
    report = await uow.session.get(HazardReport, report_id)
    return visible_or_404(report, lambda r: covers_report(who, r), "hazard_report", report_id)


async def list_reports(
    uow: UnitOfWork,
    rider: Rider | None,
    *,
    page: PageRequest,
    filters: HazardReportFilters,
    who: Principal | None = None,
) -> Page[HazardReport]:
    query = select(HazardReport)
    if rider is not None:
        query = query.where(HazardReport.rider_id == rider.id)
    elif who is not None and not who.is_admin:
        query = query.where(
            sa.or_(
                col(HazardReport.community).in_(who.scoped_values("community")),
                col(HazardReport.compound).in_(who.scoped_values("compound")),
            )
        )
    query = where_given(
        query,
        (HazardReport.status, filters.status),
        (HazardReport.community, filters.community),
        (HazardReport.category, filters.category),
    )
    return await keyset_page(uow.session, query, Keyset((HazardReport.created_at, HazardReport.id)), page)


async def report_for_issue(uow: UnitOfWork, report_id: UUID) -> HazardReport | None:
    return await uow.session.get(HazardReport, report_id, with_for_update=uow.db.is_postgres)


# --- hazard report outcomes (driven by issue events) ----------------------------------------------------------

_OPENED_STATE = (
    sa.select(_REPORTS.c.id, _REPORTS.c.status, _REPORTS.c.progress)
    .where(_REPORTS.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_REPORTS.c.id)  # rows locked in one order: concurrent handlers cannot deadlock
    .with_for_update()
)
_SET_ISSUE = (
    sa.update(_REPORTS).where(_REPORTS.c.id == sa.bindparam("b_id")).values(issue_id=sa.bindparam("b_issue_id"))
)
_ACCEPT = (
    sa.update(_REPORTS)
    .where(_REPORTS.c.id == sa.bindparam("b_id"))
    .values(
        issue_id=sa.bindparam("b_issue_id"),
        status=HazardStatus.accepted.value,
        issue_status="submitted",
        updated_at=sa.bindparam("b_now"),
        progress=sa.bindparam("b_progress", type_=_REPORTS.c.progress.type),
    )
)


async def link_to_issue(uow: UnitOfWork, report_ids: list[UUID], issue_id: UUID, note: str) -> None:
    """An issue was opened for these reports (or they were attached to one): each now carries the issue, and a
    submitted one is accepted, with the step on its progress. This runs for every report the issues service
    takes in, so it is Core statements on the fast path (a locking read and one UPDATE a report) rather than
    ORM loads and a flush; ``move_report`` is the same step for the ORM objects of the other outcomes."""
    if not report_ids:
        return
    await uow.flush_orm()  # a report changed earlier in this unit (a batch of events) is read as changed
    now = utcnow()
    for row in await uow.fetch(_OPENED_STATE, {"ids": report_ids}):
        if row.status == HazardStatus.submitted:
            progress = [*(row.progress or []), progress_step("submitted", note, now)]
            params = {"b_id": row.id, "b_issue_id": issue_id, "b_now": now, "b_progress": progress}
            await uow.execute(_ACCEPT, params)
        else:
            await uow.execute(_SET_ISSUE, {"b_id": row.id, "b_issue_id": issue_id})
    await uow.refresh_orm(HazardReport, report_ids)


async def award_for_verified_report(uow: UnitOfWork, report: HazardReport, event_id: str) -> None:
    settings = config.get()
    result = await ledger.earn(
        uow,
        rider_id=report.rider_id,
        amount=settings.hazard_points.get(report.category, 0),
        cause_type="hazard_report",
        cause_id=str(report.id),
        event_id=event_id,
        note=f"Verified {report.category} report",
        category_cap=settings.hazard_daily_points_cap,
    )
    if result.entry is not None:
        report.points_awarded += result.amount


async def reverse_award(uow: UnitOfWork, report: HazardReport, event_id: str, reason: str) -> None:
    """A report found false loses what it earned — as much as the balance still holds (never below zero)."""
    if report.points_awarded <= 0:
        return
    balance = await ledger.lock_balance(uow, report.rider_id)
    take_back = min(report.points_awarded, balance)
    if take_back == 0:
        return
    entry = await ledger.post_entry(
        uow,
        rider_id=report.rider_id,
        kind=EntryKind.reversed,
        amount=-take_back,
        cause_type="hazard_report",
        cause_id=str(report.id),
        event_id=event_id,
        note=reason[:500],
    )
    if entry is not None:
        report.points_awarded -= take_back


async def count_false_report(uow: UnitOfWork, report: HazardReport) -> None:
    """Mark a report false and flag its rider for staff when false reports pile up."""
    if report.false_report:
        return
    report.false_report = True
    rider = await uow.session.get(Rider, report.rider_id, with_for_update=uow.db.is_postgres)
    if rider is None:
        return
    rider.false_reports += 1
    settings = config.get()
    since = utcnow() - timedelta(days=settings.false_report_window_days)
    await uow.session.flush()
    recent = int(
        (
            await uow.session.execute(
                sa.select(sa.func.count())
                .select_from(HazardReport)
                .where(
                    col(HazardReport.rider_id) == rider.id,
                    col(HazardReport.false_report).is_(True),
                    col(HazardReport.created_at) >= since,
                )
            )
        ).scalar_one()
    )
    if recent >= settings.false_report_flag_threshold and not rider.flagged:
        rider.flagged = True
        rider.flag_reason = f"{recent} reports found false in {settings.false_report_window_days} days"
        rider.updated_at = utcnow()


def move_report(report: HazardReport, status: HazardStatus | None, issue_status: str, note: str | None = None) -> None:
    if status is not None:
        report.status = status
    report.issue_status = issue_status
    report.updated_at = utcnow()
    _step(report, issue_status, note)
