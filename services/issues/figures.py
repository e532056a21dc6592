"""Honest public figures: requests handled, completion rate, time to first response and to resolution, overdue
counts — per community, category and month; CSV exports for staff.

Completion rate = (resolved + confirmed) ÷ closed, where closed = resolved + confirmed + closed unresolved +
rejected + redirected ("not ours"). Nothing is left out of the denominator to flatter the rate; each closed
outcome is also reported on its own. Merged duplicates are not separate requests and are not counted.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import SQLModel, col, select

from minsheng.platform import csvfile
from minsheng.platform.auth import Principal
from minsheng.platform.errors import invalid
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.issues import config, queries
from services.issues.models import COMPLETED_STATUSES, OPEN_STATUSES, Issue, IssueStatus

log = logging.getLogger(__name__)
Dimension = Literal["community", "category", "month"]
EXPORT_CAP = 100_000
_NEWEST_FIRST = Keyset((Issue.created_at, Issue.id))


class _ExportBatch(PageRequest):
    limit: int = 1000


class FigureRow(SQLModel):
    community: str | None = None
    category: str | None = None
    month: str | None = None
    handled: int
    open: int
    completed: int
    resolved_awaiting_confirmation: int
    confirmed: int
    closed_unresolved: int
    rejected: int
    redirected: int
    closed: int
    completion_rate: float | None
    completion_rate_excluding_rejected: float | None
    overdue: int
    urgent: int
    median_first_response_minutes: float | None
    median_resolution_hours: float | None
    average_rating: float | None
    ratings: int


class Figures(SQLModel):
    period_from: date | None
    period_to: date | None
    group_by: list[Dimension]
    definitions: dict[str, str]
    rows: list[FigureRow]


DEFINITIONS = {
    "handled": "requests received in the period (merged duplicates excluded)",
    "completed": "resolved + confirmed by the reporter (or auto-confirmed)",
    "closed": "completed + closed unresolved + rejected + redirected",
    "completion_rate": "completed ÷ closed",
    "completion_rate_excluding_rejected": "completed ÷ (completed + closed unresolved)",
    "overdue": "requests that missed their first-response or resolution deadline (even if done since)",
    "median_first_response_minutes": "median time from report to the first staff response",
    "median_resolution_hours": "median time from report to resolution",
    "month": "by local month of the report (UTC+8)",
}


def _month_expr(is_pg: bool, offset_hours: int) -> Any:
    if is_pg:
        return sa.literal_column(
            f"to_char((issues.created_at AT TIME ZONE 'UTC') + interval '{int(offset_hours)} hours', 'YYYY-MM')"
        )
    return sa.func.strftime("%Y-%m", col(Issue.created_at), f"{int(offset_hours):+d} hours")


def _seconds(is_pg: bool, later: Any, earlier: Any) -> Any:
    if is_pg:
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def bounds(start: date | None, end: date | None, offset_hours: int) -> tuple[datetime | None, datetime | None]:
    tz = timezone(timedelta(hours=offset_hours))
    lo = datetime.combine(start, datetime.min.time(), tz) if start else None
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), tz) if end else None
    return lo, hi


def _count(cond: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


async def compute(
    uow: UnitOfWork,
    *,
    start: date | None = None,
    end: date | None = None,
    community: str | None = None,
    category: str | None = None,
    group_by: list[Dimension] | None = None,
    now: datetime | None = None,
) -> Figures:
    cfg = config.get()
    now = now or utcnow()
    dims = list(dict.fromkeys(group_by or []))
    is_pg = uow.db.is_postgres
    exprs: dict[str, Any] = {
        "community": col(Issue.community),
        "category": col(Issue.category),
        "month": _month_expr(is_pg, cfg.utc_offset_hours),
    }
    keys = [exprs[d].label(d) for d in dims]
    lo, hi = bounds(start, end, cfg.utc_offset_hours)
    where: list[Any] = [Issue.status != IssueStatus.merged]
    if lo:
        where.append(col(Issue.created_at) >= lo)
    if hi:
        where.append(col(Issue.created_at) < hi)
    if community:
        where.append(Issue.community == community)
    if category:
        where.append(Issue.category == category)
    status = col(Issue.status)
    overdue = sa.or_(
        sa.func.coalesce(col(Issue.first_responded_at), now) > col(Issue.first_response_due_at),
        sa.func.coalesce(col(Issue.resolved_at), col(Issue.closed_at), now) > col(Issue.resolution_due_at),
    )
    first_s = _seconds(is_pg, col(Issue.first_responded_at), col(Issue.created_at))
    resolve_s = _seconds(is_pg, col(Issue.resolved_at), col(Issue.created_at))
    measures = [
        sa.func.count().label("handled"),
        _count(status.in_([s.value for s in OPEN_STATUSES])).label("open"),
        _count(status == IssueStatus.resolved).label("resolved"),
        _count(status == IssueStatus.confirmed).label("confirmed"),
        _count(status == IssueStatus.closed_unresolved).label("closed_unresolved"),
        _count(status == IssueStatus.rejected).label("rejected"),
        _count(status == IssueStatus.redirected).label("redirected"),
        _count(overdue).label("overdue"),
        _count(col(Issue.urgent).is_(True)).label("urgent"),
        sa.func.avg(col(Issue.rating)).label("average_rating"),
        sa.func.count(col(Issue.rating)).label("ratings"),
    ]
    if is_pg:
        measures += [
            sa.func.percentile_cont(0.5).within_group(first_s).label("median_first"),
            sa.func.percentile_cont(0.5)
            .within_group(sa.case((status.in_([s.value for s in COMPLETED_STATUSES]), resolve_s)))
            .label("median_resolution"),
        ]
    query = sa.select(*keys, *measures).where(*where)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    rows = (await uow.session.execute(query)).mappings().all()
    medians: dict[tuple[Any, ...], tuple[float | None, float | None]] = {}
    if not is_pg:  # SQLite has no percentile: fetch the durations (the embedded mode's data is small)
        firsts: dict[tuple[Any, ...], list[float]] = {}
        resolutions: dict[tuple[Any, ...], list[float]] = {}
        dq = sa.select(
            *keys,
            first_s.label("f"),
            sa.case((status.in_([s.value for s in COMPLETED_STATUSES]), resolve_s)).label("r"),
        ).where(*where)
        for r in (await uow.session.execute(dq)).mappings():
            k = tuple(r[d] for d in dims)
            if r["f"] is not None:
                firsts.setdefault(k, []).append(float(r["f"]))
            if r["r"] is not None:
                resolutions.setdefault(k, []).append(float(r["r"]))
        for k in set(firsts) | set(resolutions):
            medians[k] = (
                statistics.median(firsts[k]) if firsts.get(k) else None,
                statistics.median(resolutions[k]) if resolutions.get(k) else None,
            )
    out: list[FigureRow] = []
    for r in rows:
        if r["handled"] == 0 and dims:
            continue
        k = tuple(r[d] for d in dims)
        med_first, med_res = (r["median_first"], r["median_resolution"]) if is_pg else medians.get(k, (None, None))
        completed = int(r["resolved"]) + int(r["confirmed"])
        closed = completed + int(r["closed_unresolved"]) + int(r["rejected"]) + int(r["redirected"])
        strict = completed + int(r["closed_unresolved"])
        out.append(
            FigureRow(
                **{d: r[d] for d in dims},
                handled=int(r["handled"]),
                open=int(r["open"]),
                completed=completed,
                resolved_awaiting_confirmation=int(r["resolved"]),
                confirmed=int(r["confirmed"]),
                closed_unresolved=int(r["closed_unresolved"]),
                rejected=int(r["rejected"]),
                redirected=int(r["redirected"]),
                closed=closed,
                completion_rate=round(completed / closed, 4) if closed else None,
                completion_rate_excluding_rejected=round(completed / strict, 4) if strict else None,
                overdue=int(r["overdue"]),
                urgent=int(r["urgent"]),
                median_first_response_minutes=round(float(med_first) / 60, 1) if med_first is not None else None,
                median_resolution_hours=round(float(med_res) / 3600, 2) if med_res is not None else None,
                average_rating=round(float(r["average_rating"]), 2) if r["average_rating"] is not None else None,
                ratings=int(r["ratings"]),
            )
        )
    return Figures(period_from=start, period_to=end, group_by=dims, definitions=DEFINITIONS, rows=out)


def check_period(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise invalid(
            "validation_error", "The request is not valid", "`to` is before `from`", field="to", message="before from"
        )


_CACHE: dict[tuple[Any, ...], tuple[float, Figures]] = {}
# One computation per key at a time (single flight): the others await it, or get the stale answer meanwhile.
_INFLIGHT: dict[tuple[Any, ...], asyncio.Task[Figures]] = {}
STALE_FACTOR = 10  # an expired answer is still served, while one refresh runs, for up to 10 × the TTL


async def _compute_own(uow: UnitOfWork, params: dict[str, Any]) -> Figures:
    # Its own unit of work: the computation outlives the request that started it (others await it).
    async with UnitOfWork(uow.db, uow.service) as own:
        return await compute(own, **params)


def _refresh(key: tuple[Any, ...], uow: UnitOfWork, params: dict[str, Any], ttl: float) -> asyncio.Task[Figures]:
    task = _INFLIGHT.get(key)
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        return task

    def store(done: asyncio.Task[Figures]) -> None:
        if _INFLIGHT.get(key) is done:
            del _INFLIGHT[key]
        if done.cancelled():
            return
        if done.exception() is not None:  # retrieved here, so a refresh nobody awaits does not log "never retrieved"
            log.warning("figures: refresh failed: %r", done.exception())
            return
        if len(_CACHE) > 1000:
            _CACHE.clear()
        _CACHE[key] = (time.monotonic() + ttl, done.result())

    task = asyncio.create_task(_compute_own(uow, params), name="issues-figures")
    task.add_done_callback(store)
    _INFLIGHT[key] = task
    return task


async def cached(uow: UnitOfWork, **params: Any) -> Figures:
    """``compute`` behind a short per-replica cache: the public page may be hit hard; figures move slowly.

    On a miss one computation runs per key and concurrent requests await it; once an answer has expired it is
    still served (for up to ``STALE_FACTOR`` × the TTL) while a single refresh runs in the background."""
    ttl = config.get().figures_cache_seconds
    if ttl <= 0:
        return await compute(uow, **params)
    key = (str(uow.db.url), *sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))
    now = time.monotonic()
    hit = _CACHE.get(key)
    if hit is not None:
        if hit[0] > now:
            return hit[1]
        if hit[0] + ttl * (STALE_FACTOR - 1) > now:
            _refresh(key, uow, params, ttl)
            return hit[1]
    # No usable answer: wait for the one computation (shielded: a caller that goes away does not cancel it).
    return await asyncio.shield(_refresh(key, uow, params, ttl))


EXPORT_FIELDS = [
    "id",
    "created_at",
    "category",
    "community",
    "compound",
    "channel",
    "status",
    "urgent",
    "title",
    "address",
    "departments",
    "reporter_count",
    "first_response_due_at",
    "first_responded_at",
    "resolution_due_at",
    "resolved_at",
    "closed_at",
    "rating",
    "overdue",
]


async def export_rows(
    uow: UnitOfWork, who: Principal, filters: queries.IssueFilters, now: datetime
) -> AsyncIterator[str]:
    """The CSV of the issues ``who`` may see, in batches of up to 1,000 rows (the first carries the header)."""
    header = csvfile.csv_text(EXPORT_FIELDS)
    query = select(Issue).where(*queries.visibility(who, filters), *queries.filter_clauses(filters, now))
    batch = _ExportBatch()
    sent = 0
    while sent < EXPORT_CAP:
        issues = await keyset_page(uow.session, query, _NEWEST_FIRST, batch)
        lines = [
            [
                i.id,
                i.created_at.isoformat(),
                i.category,
                i.community,
                i.compound,
                i.channel,
                i.status,
                i.urgent,
                i.title,
                i.address,
                ";".join(i.departments),
                i.reporter_count,
                _iso(i.first_response_due_at),
                _iso(i.first_responded_at),
                _iso(i.resolution_due_at),
                _iso(i.resolved_at),
                _iso(i.closed_at),
                i.rating,
                queries.is_overdue(i, now),
            ]
            for i in issues.items
        ]
        sent += len(lines)
        yield header + csvfile.rows_text(lines)
        header = ""
        if issues.next_cursor is None:
            return
        batch = _ExportBatch(cursor=issues.next_cursor)
        uow.session.expunge_all()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
