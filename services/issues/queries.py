"""Reading issues: one issue with its timeline, the filtered lists (one cached SQL statement per filter shape),
escalations, and the public answer each caller may see."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role
from minsheng.platform.coords import bounding_box, distance_m
from minsheng.platform.errors import not_found
from minsheng.platform.filters import Filter, Filters, Shape, equals
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, decode_cursor, encode_cursor, keyset_page, page_of
from minsheng.platform.privacy import FieldCipher, mask_name, mask_phone
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.issues.access import (
    ISSUES,
    LIST_COLUMNS,
    PUBLIC_COLUMNS,
    TIMELINE,
    IssueLike,
    can_see,
    is_staff,
    works_on,
)
from services.issues.models import (
    Issue,
    IssueAssignment,
    IssueFilters,
    IssuePublic,
    IssueReporter,
    IssueStatus,
    TimelineEntryPublic,
)

_validate_public = IssuePublic.__pydantic_validator__.validate_python


# --- reading ------------------------------------------------------------------------------------------------


async def get_issue(uow: UnitOfWork, who: Principal, issue_id: UUID, *, for_update: bool = False) -> Issue:
    issue = await uow.session.get(Issue, issue_id, with_for_update=for_update and uow.db.is_postgres)
    if issue is None or not await can_see(uow, who, issue):
        raise not_found("issue", issue_id)
    return issue


def is_overdue(issue: IssueLike, now: datetime | None = None) -> bool:
    """Missed (or is missing) a deadline: flagged by the sweep, or late by the clock."""
    now = now or utcnow()
    if issue.first_response_overdue_at or issue.resolution_overdue_at:
        return True
    if issue.first_response_due_at and (issue.first_responded_at or now) > issue.first_response_due_at:
        return True
    return bool(issue.resolution_due_at and (issue.resolved_at or issue.closed_at or now) > issue.resolution_due_at)


def public_view(issue: IssueLike, who: Principal, cipher: FieldCipher | None) -> IssuePublic:
    """The issue as ``who`` may see it: contact details masked for staff, hidden from everyone else."""
    if isinstance(issue, sa.Row):
        values = issue._mapping
        data = {name: values[name] for name in PUBLIC_COLUMNS}
    else:
        data = {name: getattr(issue, name) for name in PUBLIC_COLUMNS}
    return _shown(data, issue, works_on(who, issue), who.sub, cipher, utcnow())


def public_rows(rows: Iterable[sa.Row[Any]], who: Principal, cipher: FieldCipher | None) -> list[IssuePublic]:
    """``public_view`` of a page of rows, with what depends on ``who`` worked out once for the page."""
    staff = is_staff(who)
    everywhere = who.is_admin
    communities, compounds = who.scoped_values("community"), who.scoped_values("compound")
    departments = who.scoped_values("department")
    now = utcnow()
    out = []
    for row in rows:
        data = dict(zip(PUBLIC_COLUMNS, row, strict=False))  # LIST_COLUMNS start with the public ones
        works = staff and (
            everywhere
            or row.community in communities
            or row.compound in compounds
            or bool(departments.intersection(row.departments))
        )
        out.append(_shown(data, row, works, who.sub, cipher, now))
    return out


def _shown(
    data: dict[str, Any], issue: IssueLike, staff: bool, sub: str, cipher: FieldCipher | None, now: datetime
) -> IssuePublic:
    data["overdue"] = is_overdue(issue, now)
    if staff and cipher is not None:
        data["contact_name"] = mask_name(cipher.open(issue.contact_name, "issues", "contact_name", issue.id))
        data["contact_phone"] = mask_phone(cipher.open(issue.contact_phone, "issues", "contact_phone", issue.id))
    else:
        data["contact_name"] = data["contact_phone"] = None
    if not staff and issue.reporter != sub:  # co-reporters and followers do not learn each other's accounts
        data["reporter"] = None
    # Validated once, with what this caller may see (pydantic's validator: SQLModel's wrapper adds nothing here).
    return _validate_public(data)  # type: ignore[no-any-return]


_TIMELINE_COLUMNS = ("id", "action", "actor", "actor_role", "note", "internal", "data", "at")
_validate_entry = TimelineEntryPublic.__pydantic_validator__.validate_python


@functools.cache
def _timeline_statement(with_internal: bool) -> sa.Select[Any]:
    t = TIMELINE.c
    query = sa.select(*(t[name] for name in _TIMELINE_COLUMNS)).where(t.issue_id == sa.bindparam("issue_id"))
    if not with_internal:
        query = query.where(t.internal.is_(False))
    return query.order_by(t.at, t.id)


async def timeline(uow: UnitOfWork, who: Principal, issue: IssueLike) -> list[TimelineEntryPublic]:
    """The issue's timeline as ``who`` may see it, read as plain rows (no ORM objects to track or flush)."""
    staff = works_on(who, issue)
    rows = await uow.fetch(_timeline_statement(staff), {"issue_id": issue.id})
    return _entries(rows, 0, staff, who)


def _entries(rows: Iterable[sa.Row[Any]], start: int, staff: bool, who: Principal) -> list[TimelineEntryPublic]:
    """Timeline entries from rows whose columns ``start``… are ``_TIMELINE_COLUMNS``."""
    entries = [_validate_entry(dict(zip(_TIMELINE_COLUMNS, r[start:], strict=True))) for r in rows]
    if not staff:  # residents see roles, not staff accounts
        for e in entries:
            if e.actor != who.sub:
                e.actor = None
    return entries


# An issue with its whole timeline in one round trip (one row per entry; the entries a caller may not see
# are dropped in Python: whether they may is known only from the issue).
_ISSUE_WITH_TIMELINE = (
    sa.select(*LIST_COLUMNS, *(TIMELINE.c[name].label(f"entry_{name}") for name in _TIMELINE_COLUMNS))
    .select_from(ISSUES.outerjoin(TIMELINE, TIMELINE.c.issue_id == ISSUES.c.id))
    .where(ISSUES.c.id == sa.bindparam("issue_id"))
    .order_by(TIMELINE.c.at, TIMELINE.c.id)
)


async def read_issue(uow: UnitOfWork, who: Principal, issue_id: UUID) -> tuple[sa.Row[Any], list[TimelineEntryPublic]]:
    """An issue to show (not to change) as a row of ``LIST_COLUMNS``, with its timeline as ``who`` may see it;
    404 if they may not see the issue."""
    rows = await uow.fetch(_ISSUE_WITH_TIMELINE, {"issue_id": issue_id})
    if not rows or not await can_see(uow, who, rows[0]):
        raise not_found("issue", issue_id)
    issue, start = rows[0], len(LIST_COLUMNS)
    staff = works_on(who, issue)
    internal = start + _TIMELINE_COLUMNS.index("internal")
    shown = [r for r in rows if r[start] is not None and (staff or not r[internal])]
    return issue, _entries(shown, start, staff, who)


# Lists are read with statements built once per *shape* (which filters apply, in which variant), the values
# bound per request: building a select() tree and computing its cache key costs more than running it. Each
# filter is written once below (minsheng.platform.filters): when it applies, its clause, its parameters.


@dataclass(frozen=True)
class ListRequest:
    who: Principal
    filters: IssueFilters
    now: datetime


def _mine() -> sa.CompoundSelect:
    # Issues you reported (the reporter column) or were credited on / follow (issue_reporters): a UNION, so
    # PostgreSQL reads both through their indexes (an OR of the two would scan every issue).
    return sa.union(
        sa.select(ISSUES.c.id).where(ISSUES.c.reporter == sa.bindparam("sub")),
        sa.select(table_of(IssueReporter).c.issue_id).where(table_of(IssueReporter).c.subject == sa.bindparam("sub")),
    )  # type: ignore[attr-defined]


def _assigned_to(param: str) -> sa.Select[Any]:
    a = table_of(IssueAssignment).c
    return sa.select(a.issue_id).where(a.department.in_(sa.bindparam(param, expanding=True)), a.active.is_(True))


def _in(column: sa.Column[Any], param: str) -> sa.ColumnElement[bool]:
    return column.in_(sa.bindparam(param, expanding=True))


def _visible_key(r: ListRequest) -> tuple[Any, ...]:
    """Which issues ``who`` may list: mine | all | staff (with the kinds of scope it has) | grid_worker | public."""
    who = r.who
    if r.filters.mine:
        return ("mine",)
    if who.is_admin and (is_staff(who) or not who.has(Role.resident, Role.rider, Role.grid_worker)):
        return ("all",)
    if is_staff(who):
        scopes = ("community", "compound", "department")
        return ("staff", *(bool(who.scoped_values(s)) for s in scopes))
    if who.has(Role.grid_worker) and (who.scoped_values("community") or who.scoped_values("compound")):
        return ("grid_worker",)
    return ("public",)


def _visible_clause(key: tuple[Any, ...]) -> list[sa.ColumnElement[bool]]:
    c = ISSUES.c
    live = c.status != IssueStatus.merged.value  # a merged report's reporters follow the issue that stays
    if key[0] == "mine":
        return [c.id.in_(_mine()), live]
    if key[0] == "staff":
        communities, compounds, departments = key[1:]
        ors = (
            ([_in(c.community, "v_communities")] if communities else [])
            + ([_in(c.compound, "v_compounds")] if compounds else [])
            + ([c.id.in_(_assigned_to("v_departments"))] if departments else [])
        )
        return [sa.or_(*ors) if ors else sa.false()]
    if key[0] == "grid_worker":
        return [
            sa.or_(
                _in(c.community, "v_communities"),
                _in(c.compound, "v_compounds"),
                c.is_public.is_(True),
                c.id.in_(_mine()),
            )
        ]
    if key[0] == "public":
        return [live, sa.or_(c.is_public.is_(True), c.id.in_(_mine()))]
    return []  # all


def _visible_params(r: ListRequest) -> dict[str, Any]:
    who = r.who
    staff = _visible_key(r)[0] == "staff"
    return {
        "sub": who.sub,
        "v_communities": sorted(who.scoped_values("community")),
        "v_compounds": sorted(who.scoped_values("compound")),
        "v_departments": sorted(who.scoped_values("department")) if staff else [],
    }


def _overdue(key: bool) -> sa.ColumnElement[bool]:
    c = ISSUES.c
    now = sa.bindparam("now", type_=c.created_at.type)
    late = sa.and_(
        c.closed_at.is_(None),
        sa.or_(
            c.escalation_level > 0,
            c.resolution_due_at < now,
            sa.and_(c.first_responded_at.is_(None), c.first_response_due_at < now),
        ),
    )
    return late if key else sa.not_(late)


def _near_params(r: ListRequest) -> dict[str, Any]:
    assert r.filters.near is not None
    south, north, west, east = bounding_box(*r.filters.near)
    return {"south": south, "north": north, "west": west, "east": east}


def _applies(value: Any) -> bool | None:
    return True if value is not None else None


_c = ISSUES.c
ISSUE_FILTERS = Filters[ListRequest](
    Filter(_visible_key, _visible_clause, _visible_params),
    Filter(
        lambda r: True if r.filters.status else None,
        lambda _: _in(_c.status, "statuses"),
        lambda r: {"statuses": [s.value for s in r.filters.status or ()]},
    ),
    equals(_c.community, lambda r: r.filters.community),
    equals(_c.compound, lambda r: r.filters.compound),
    equals(_c.category, lambda r: r.filters.category),
    equals(_c.channel, lambda r: r.filters.channel),
    equals(_c.urgent, lambda r: r.filters.urgent),
    Filter(
        lambda r: _applies(r.filters.department),
        lambda _: _c.id.in_(_assigned_to("departments")),
        lambda r: {"departments": [r.filters.department]},
    ),
    Filter(lambda r: r.filters.overdue, _overdue, lambda r: {"now": r.now}),
    Filter(
        lambda r: _applies(r.filters.near),
        lambda _: [
            _c.latitude.between(sa.bindparam("south"), sa.bindparam("north")),
            _c.longitude.between(sa.bindparam("west"), sa.bindparam("east")),
        ],
        _near_params,
    ),
    Filter(
        lambda r: _applies(r.filters.created_from),
        lambda _: _c.created_at >= sa.bindparam("created_from", type_=_c.created_at.type),
        lambda r: {"created_from": r.filters.created_from},
    ),
    Filter(
        lambda r: _applies(r.filters.created_to),
        lambda _: _c.created_at < sa.bindparam("created_to", type_=_c.created_at.type),
        lambda r: {"created_to": r.filters.created_to},
    ),
)


def list_query(who: Principal, f: IssueFilters, now: datetime) -> tuple[Shape, dict[str, Any]]:
    """The shape of ``who``'s list with filters ``f`` (the cache key of its statement), and the values of its
    parameters."""
    return ISSUE_FILTERS.query(ListRequest(who, f, now))


def visibility(who: Principal, f: IssueFilters) -> list[Any]:
    """What ``who`` may see, with the values bound (for queries of their own, e.g. the CSV export)."""
    shape, params = list_query(who, IssueFilters(mine=f.mine), utcnow())
    return [_bound(clause, params) for clause in ISSUE_FILTERS.where(shape)]


def filter_clauses(f: IssueFilters, now: datetime) -> list[Any]:
    """The filters of ``f``, with the values bound (for queries of their own, e.g. the CSV export)."""
    anyone = Principal(sub="", roles=frozenset({Role.admin}))
    shape, params = list_query(anyone, f.model_copy(update={"mine": False}), now)
    return [_bound(clause, params) for clause in ISSUE_FILTERS.where(shape)]


def _bound(clause: sa.ColumnElement[bool], params: dict[str, Any]) -> sa.ColumnElement[bool]:
    # ``sa.false()`` (staff without a scope see nothing) is immutable and has no parameters to bind.
    return clause if isinstance(clause, sa.sql.elements.False_) else clause.params(params)


@functools.cache
def _list_statement(shape: Shape, after_cursor: bool) -> sa.Select[Any]:
    c = ISSUES.c
    query = sa.select(*LIST_COLUMNS).where(*ISSUE_FILTERS.where(shape))
    if after_cursor:
        # A row-value comparison: an index range condition on PostgreSQL and SQLite alike.
        query = query.where(
            sa.tuple_(c.created_at, c.id)
            < sa.tuple_(
                sa.bindparam("after_created", type_=c.created_at.type), sa.bindparam("after_id", type_=c.id.type)
            )
        )
    return query.order_by(c.created_at.desc(), c.id.desc()).limit(sa.bindparam("limit", type_=sa.Integer()))


async def list_issues(
    uow: UnitOfWork, who: Principal, page: PageRequest, *, filters: IssueFilters | None = None
) -> Page[Any]:
    """A page of plain rows (``LIST_COLUMNS``): read them with ``public_rows`` (or ``public_view``)."""
    f = filters or IssueFilters()
    limit = page.limit
    shape, params = list_query(who, f, utcnow())
    params["limit"] = limit + 1
    if page.cursor:
        params["after_created"], params["after_id"] = decode_cursor(page.cursor, datetime, UUID)
    # Core rows on the fast path: the ORM's result machinery adds nothing for plain columns.
    rows = await uow.fetch(_list_statement(shape, bool(page.cursor)), params)
    if f.near is None:
        return page_of(rows, limit, lambda i: encode_cursor(i.created_at, i.id))
    # The bounding box over-selects its corners: drop those, but page on what the index walked.
    lat, lng, radius = f.near
    window = rows[:limit]
    items = [
        i
        for i in window
        if i.latitude is not None
        and i.longitude is not None
        and distance_m(lat, lng, i.latitude, i.longitude) <= radius
    ]
    last = window[-1] if window else None
    return Page[Any](
        items=items,
        next_cursor=encode_cursor(last.created_at, last.id) if last is not None and len(rows) > limit else None,
    )


_MOST_ESCALATED_FIRST = Keyset(
    (col(Issue.escalation_level), col(Issue.resolution_due_at), col(Issue.id)),
    kinds=(int, datetime, UUID),
    descending=(True, False, False),
)


async def escalations(uow: UnitOfWork, who: Principal, page: PageRequest) -> Page[Issue]:
    """Open issues escalated for being overdue, most escalated and longest overdue first (sub-district)."""
    query = select(Issue).where(
        *visibility(who, IssueFilters()), col(Issue.escalation_level) > 0, col(Issue.closed_at).is_(None)
    )
    return await keyset_page(uow.session, query, _MOST_ESCALATED_FIRST, page)
