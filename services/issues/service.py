"""Use cases of the issues service: intake from every channel, duplicates, the staff workflow, the
reporter's confirmation. They take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

import dataclasses
import functools
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.dialects import postgresql
from sqlmodel import SQLModel, col, select

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import (
    IssueAccepted,
    IssueAssigned,
    IssueClosedUnresolved,
    IssueConfirmed,
    IssueCreated,
    IssueLinked,
    IssueMerged,
    IssueRejected,
    IssueReopened,
    IssueResolved,
    IssueVerified,
)
from minsheng.contracts.points import HazardReported
from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.photos import owned_photo_paths
from minsheng.platform.privacy import FieldCipher, mask_name, mask_phone
from minsheng.platform.sql import one_of
from minsheng.platform.uow import UnitOfWork
from services.issues.catalogue import (
    category_or_default,
    render_template,
    require_category,
    resolve_community,
    validate_attributes,
)
from services.issues.config import IssuesConfig, get_config
from services.issues.geo import bounding_box, distance_m
from services.issues.models import (
    OPEN_STATUSES,
    Assignment,
    Category,
    Channel,
    CloseUnresolved,
    Confirmation,
    Department,
    Issue,
    IssueAssignment,
    IssueCreate,
    IssuePublic,
    IssueReporter,
    IssueStatus,
    MergeRequest,
    NotHandledMatter,
    Photo,
    Redirect,
    Rejection,
    Reopening,
    Resolution,
    SplitRequest,
    StaffNote,
    TimelineEntry,
    TimelineEntryPublic,
)

HAZARD_TITLES = {
    "fire": "Fire reported by a rider",
    "gas_leak": "Gas leak reported by a rider",
    "water_leak": "Water leak reported by a rider",
    "road": "Road hazard reported by a rider",
    "other": "Hazard reported by a rider",
}


# An issue, or a row of its columns (the list reads plain rows: no ORM objects to build for a page of 50).
IssueLike = Issue | sa.Row[Any]
ISSUES: sa.Table = Issue.__table__  # type: ignore[attr-defined]
_TIMELINE: sa.Table = TimelineEntry.__table__  # type: ignore[attr-defined]
_PUBLIC_COLUMNS = [c for c in IssuePublic.model_fields if c in Issue.model_fields]
_validate_public = IssuePublic.__pydantic_validator__.validate_python
# What a list reads: the columns IssuePublic shows, and the flags `is_overdue` looks at.
LIST_COLUMNS = [ISSUES.c[name] for name in (*_PUBLIC_COLUMNS, "first_response_overdue_at", "resolution_overdue_at")]


# --- who may do what ----------------------------------------------------------------------------------------


def is_staff(who: Principal) -> bool:
    return who.has(Role.staff) or Role.admin in who.roles


def role_of(who: Principal) -> str:
    for role in (Role.admin, Role.staff, Role.grid_worker, Role.rider, Role.resident):
        if role in who.roles:
            return role.value
    return "user"


def manages(who: Principal, issue: IssueLike) -> bool:
    """Community/compound staff (or admins) manage the issues in their scope."""
    return is_staff(who) and who.covers(issue.community, issue.compound)


def works_on(who: Principal, issue: IssueLike) -> bool:
    """Managers, and the departments the issue is assigned to."""
    if manages(who, issue):
        return True
    return is_staff(who) and bool(who.scoped_values("department").intersection(issue.departments))


_REPORTERS = IssueReporter.__table__.c  # type: ignore[attr-defined]
_IS_PARTICIPANT = (
    sa.select(_REPORTERS.id)
    .where(_REPORTERS.issue_id == sa.bindparam("issue_id"), _REPORTERS.subject == sa.bindparam("subject"))
    .limit(1)
)
_IS_REPORTER = _IS_PARTICIPANT.where(_REPORTERS.role == "reporter")


async def is_participant(uow: UnitOfWork, who: Principal, issue: IssueLike) -> bool:
    if issue.reporter == who.sub:
        return True
    found = await uow.session.execute(_IS_PARTICIPANT, {"issue_id": issue.id, "subject": who.sub})
    return found.first() is not None


async def is_reporter(uow: UnitOfWork, who: Principal, issue: IssueLike) -> bool:
    """Reported it (first or as a duplicate) — followers comment, reporters confirm and reopen."""
    if issue.reporter == who.sub:
        return True
    found = await uow.session.execute(_IS_REPORTER, {"issue_id": issue.id, "subject": who.sub})
    return found.first() is not None


async def can_see(uow: UnitOfWork, who: Principal, issue: IssueLike) -> bool:
    if works_on(who, issue):
        return True
    if who.has(Role.grid_worker) and who.covers(issue.community, issue.compound):
        return True
    if issue.is_public and issue.status != IssueStatus.merged:
        return True
    return await is_participant(uow, who, issue)


# --- event facts and the timeline ---------------------------------------------------------------------------


def _origin(issue: IssueLike) -> Origin | None:
    if issue.origin_service and issue.origin_kind and issue.origin_id:
        return Origin(service=issue.origin_service, kind=issue.origin_kind, id=issue.origin_id)
    return None


def _fact(issue: IssueLike, actor: str | None) -> dict[str, Any]:
    return {
        "issue_id": issue.id,
        "category": issue.category,
        "channel": issue.channel,
        "urgent": issue.urgent,
        "community": issue.community,
        "compound": issue.compound,
        "origin": _origin(issue),
        "linked": [Origin(**o) for o in issue.linked],
        "occurred_at": issue.updated_at,
        "actor": actor,
        "reporter": getattr(issue, "reporter", None),
    }


def record(
    uow: UnitOfWork,
    issue: Issue,
    action: str,
    who: Principal | None,
    note: str | None = None,
    *,
    internal: bool = False,
    data: dict[str, Any] | None = None,
    actor: str | None = None,
    actor_role: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append to the timeline: ``who`` acted, or (events, jobs) ``actor`` with ``actor_role``, or the system."""
    role = role_of(who) if who else actor_role or ("system" if actor is None else None)
    uow.session.add(
        TimelineEntry(
            issue_id=issue.id,
            action=action,
            actor=who.sub if who else actor,
            actor_role=role,
            note=note,
            internal=internal,
            data=data or {},
            at=at or issue.updated_at,
        )
    )


def _touch(issue: Issue, now: datetime | None = None) -> datetime:
    issue.updated_at = now or utcnow()
    return issue.updated_at


def _responded(issue: Issue, now: datetime) -> None:
    if issue.first_responded_at is None:
        issue.first_responded_at = now


def _close(issue: Issue, status: IssueStatus, now: datetime) -> None:
    issue.status = status
    issue.closed_at = now


# --- intake -------------------------------------------------------------------------------------------------


@dataclass
class Intake:
    category: Category
    title: str
    description: str
    channel: Channel
    reporter: str | None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    community: str | None = None
    compound: str | None = None
    origin: Origin | None = None
    urgent: bool = False
    is_public: bool = True
    photo_urls: list[str] | None = None
    attributes: dict[str, Any] | None = None
    intake: str | None = None
    contact_name: str | None = None  # already encrypted
    contact_phone: str | None = None  # already encrypted
    actor_role: str | None = None
    open311_token: str | None = None
    issue_id: UUID | None = None  # the id the contact details were sealed for (a new issue takes it)


def deadlines(category: Category, urgent: bool, start: datetime, cfg: IssuesConfig) -> tuple[datetime, datetime]:
    minutes = category.first_response_minutes
    if urgent:
        minutes = min(minutes, cfg.urgent_ack_minutes)
    return start + timedelta(minutes=minutes), start + timedelta(hours=category.resolution_hours)


def _dedupe_keys(category: str, lat: float, lng: float, radius_m: float) -> list[str]:
    """The advisory locks that serialise the intake of reports which could be duplicates of each other: one per
    grid cell the report's search box touches, on a grid of cells at least as wide as that box up to 60°N (so
    at most four). Two reports within the radius of each other always share one — the cell of either one's
    point lies in the other's box — while reports of one category elsewhere go ahead side by side."""
    cell = 4 * radius_m / 111_320.0  # degrees; a box is at most cell/2 wide in longitude below 60°
    south, north, west, east = bounding_box(lat, lng, radius_m)
    rows = range(math.floor(south / cell), math.floor(north / cell) + 1)
    columns = range(math.floor(west / cell), math.floor(east / cell) + 1)
    return sorted(f"issues-dedupe:{category}:{r}:{c}" for r in rows for c in columns)


# Taken in the keys' order, so two intakes never wait for each other crosswise.
_lock_cells = (
    sa.select(sa.func.unnest(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String()))).label("key"))
    .order_by("key")
    .subquery("cells")
)
_DEDUPE_LOCK = sa.select(sa.func.count(sa.func.pg_advisory_xact_lock(sa.func.hashtext(_lock_cells.c.key))))


@functools.cache
def _nearby_open_issues(include_private: bool) -> sa.Select[Any]:
    """Open issues of a category reported since a time, inside a bounding box, newest first (at most 50)."""
    c = ISSUES.c
    query = sa.select(c.id, c.latitude, c.longitude).where(
        c.category == sa.bindparam("category"),
        c.created_at >= sa.bindparam("since", type_=c.created_at.type),
        one_of(c.status, [s.value for s in OPEN_STATUSES]),
        c.latitude.between(sa.bindparam("south"), sa.bindparam("north")),
        c.longitude.between(sa.bindparam("west"), sa.bindparam("east")),
    )
    if not include_private:
        query = query.where(c.is_public.is_(True))
    return query.order_by(c.created_at.desc()).limit(50)


async def find_duplicate(
    uow: UnitOfWork,
    category: str,
    lat: float,
    lng: float,
    now: datetime,
    cfg: IssuesConfig,
    *,
    include_private: bool = False,
    locked: bool = False,
) -> Issue | None:
    """The nearest open issue of the same category reported within the radius and time window. Private issues
    (a household's need) only absorb reports from staff-side channels: a resident's report must not make them
    a participant of someone else's private matter."""
    if uow.db.is_postgres and not locked:
        # Two simultaneous reports of one fire must not both open an issue.
        connection = await uow.session.connection()
        await connection.execute(_DEDUPE_LOCK, {"keys": _dedupe_keys(category, lat, lng, cfg.dedupe_radius_m)})
    south, north, west, east = bounding_box(lat, lng, cfg.dedupe_radius_m)
    connection = await uow.session.connection()
    rows = await connection.execute(
        _nearby_open_issues(include_private),
        {
            "category": category,
            "since": now - timedelta(hours=cfg.dedupe_window_hours),
            "south": south,
            "north": north,
            "west": west,
            "east": east,
        },
    )
    best: tuple[float, UUID] | None = None
    for ident, issue_lat, issue_lng in rows:
        d = distance_m(lat, lng, issue_lat, issue_lng)
        if d <= cfg.dedupe_radius_m and (best is None or d < best[0]):
            best = (d, ident)
    # Only a duplicate is loaded as an ORM object (attach changes it); most reports are new issues.
    return await uow.session.get(Issue, best[1]) if best else None


def _defaults(model: type[SQLModel]) -> Callable[[], dict[str, Any]]:
    """The field defaults of a table model, as its constructor fills them, for Core INSERTs: a SQLModel table
    object costs ~250 µs to construct (SQLModel validates and sets every field in Python)."""
    fixed = {
        name: f.default
        for name, f in model.model_fields.items()
        if f.default is not PydanticUndefined and f.default_factory is None
    }
    factories = [(name, f.default_factory) for name, f in model.model_fields.items() if f.default_factory]
    return lambda: {**fixed, **{name: make() for name, make in factories}}  # type: ignore[call-arg]


_issue_defaults = _defaults(Issue)
_reporter_defaults = _defaults(IssueReporter)
_timeline_defaults = _defaults(TimelineEntry)


def _insert(table: sa.Table, prefix: str) -> sa.Insert:
    """An INSERT of every column of ``table``, bound to parameters ``<prefix><column>``."""
    return sa.insert(table).values({c.name: sa.bindparam(prefix + c.name, type_=c.type) for c in table.c})


@functools.cache
def _intake_statements(postgres: bool, with_reporter: bool) -> tuple[sa.Executable, ...]:
    """Statements writing a new issue, its first reporter and its first timeline entry, returning the issue's
    ``LIST_COLUMNS``. On PostgreSQL one statement (data-modifying CTEs; the foreign keys are checked at its
    end): one round trip instead of three."""
    issue = _insert(ISSUES, "i_").returning(*LIST_COLUMNS)
    rest = ([_insert(IssueReporter.__table__, "r_")] if with_reporter else []) + [  # type: ignore[attr-defined]
        _insert(_TIMELINE, "t_")
    ]
    if not postgres:
        return (issue, *rest)
    written = issue.cte("issue")
    ctes = [statement.cte(f"w{n}") for n, statement in enumerate(rest)]
    return (sa.select(*(written.c[c.name] for c in LIST_COLUMNS)).add_cte(written, *ctes),)


_ISSUE_FOR_ORIGIN = sa.select(_REPORTERS.issue_id).where(
    _REPORTERS.origin_service == sa.bindparam("service"),
    _REPORTERS.origin_kind == sa.bindparam("kind"),
    _REPORTERS.origin_id == sa.bindparam("id"),
)
# The same, taking the report's dedupe locks in the same round trip (the duplicate search comes after them).
_LOCK_AND_ISSUE_FOR_ORIGIN = sa.select(_ISSUE_FOR_ORIGIN.scalar_subquery(), _DEDUPE_LOCK.scalar_subquery())


def _dedupes(category: Category, lat: float | None, lng: float | None) -> bool:
    return category.dedupe and lat is not None and lng is not None


async def issue_for_origin(uow: UnitOfWork, origin: Origin, *, lock_keys: list[str] | None = None) -> UUID | None:
    """The issue a report from another service became. With ``lock_keys`` (PostgreSQL) it also takes those
    dedupe locks, which ``intake`` then need not take again."""
    params = {"service": origin.service, "kind": origin.kind, "id": origin.id}
    connection = await uow.session.connection()
    if lock_keys and uow.db.is_postgres:
        found = await connection.execute(_LOCK_AND_ISSUE_FOR_ORIGIN, {**params, "keys": lock_keys})
    else:
        found = await connection.execute(_ISSUE_FOR_ORIGIN, params)
    return found.scalar()


async def intake(
    uow: UnitOfWork, data: Intake, *, now: datetime | None = None, cfg: IssuesConfig | None = None, locked: bool = False
) -> tuple[IssueLike, bool]:
    """Open an issue, or attach the report to the open issue it duplicates. Returns (issue, attached): a new
    issue as a row of ``LIST_COLUMNS`` (written with Core: no ORM object to build and flush). ``locked``: the
    caller took the report's dedupe locks already (``issue_for_origin``)."""
    cfg = cfg or get_config()
    now = now or utcnow()
    cat = data.category
    urgent = data.urgent or cat.urgent
    if _dedupes(cat, data.latitude, data.longitude):
        assert data.latitude is not None and data.longitude is not None
        existing = await find_duplicate(
            uow,
            cat.code,
            data.latitude,
            data.longitude,
            now,
            cfg,
            locked=locked,
            include_private=data.channel in (Channel.grid_worker, Channel.staff),
        )
        if existing is not None:
            await attach(uow, existing, data, now)
            return existing, True
    first_due, resolution_due = deadlines(cat, urgent, now, cfg)
    origin = data.origin
    issue = {
        **_issue_defaults(),
        **({"id": data.issue_id} if data.issue_id is not None else {}),
        "title": data.title,
        "description": data.description,
        "category": cat.code,
        "latitude": data.latitude,
        "longitude": data.longitude,
        "address": data.address,
        "community": data.community,
        "compound": data.compound,
        "channel": data.channel,
        "intake": data.intake,
        "urgent": urgent,
        "is_public": data.is_public,
        "photo_urls": data.photo_urls or [],
        "attributes": data.attributes or {},
        "reporter": data.reporter,
        "contact_name": data.contact_name,
        "contact_phone": data.contact_phone,
        "origin_service": origin.service if origin else None,
        "origin_kind": origin.kind if origin else None,
        "origin_id": origin.id if origin else None,
        "open311_token": data.open311_token,
        "created_at": now,
        "updated_at": now,
        "first_response_due_at": first_due,
        "resolution_due_at": resolution_due,
    }
    params = {f"i_{k}": v for k, v in issue.items()}
    if data.reporter:
        params.update(
            {
                f"r_{k}": v
                for k, v in {
                    **_reporter_defaults(),
                    "issue_id": issue["id"],
                    "subject": data.reporter,
                    "role": "reporter",
                    "channel": data.channel,
                    "created_at": now,
                    "origin_service": issue["origin_service"],
                    "origin_kind": issue["origin_kind"],
                    "origin_id": issue["origin_id"],
                }.items()
            }
        )
    params.update(
        {
            f"t_{k}": v
            for k, v in {
                **_timeline_defaults(),
                "issue_id": issue["id"],
                "action": "submitted",
                "actor": data.reporter,
                "actor_role": data.actor_role or data.channel,
                "at": now,
                "data": {"channel": data.channel, **({"intake": data.intake} if data.intake else {})},
            }.items()
        }
    )
    connection = await uow.session.connection()
    first, *rest = _intake_statements(uow.db.is_postgres, bool(data.reporter))
    row = (await connection.execute(first, params)).one()
    for statement in rest:
        await connection.execute(statement, params)
    uow.emit(IssueCreated(title=row.title, **_fact(row, data.reporter)))
    return row, False


async def attach(uow: UnitOfWork, issue: Issue, data: Intake, now: datetime) -> None:
    """A further report of the same problem: credit the reporter, make them follow it, link its origin."""
    origin = data.origin
    if (
        origin is None
        and data.reporter
        and await is_reporter(uow, Principal(sub=data.reporter, roles=frozenset()), issue)
    ):
        return  # the same person reporting it again (a double tap): already credited
    uow.session.add(
        IssueReporter(
            issue_id=issue.id,
            subject=data.reporter or f"anonymous:{now.timestamp()}",
            role="reporter",
            channel=data.channel,
            created_at=now,
            origin_service=origin.service if origin else None,
            origin_kind=origin.kind if origin else None,
            origin_id=origin.id if origin else None,
        )
    )
    issue.reporter_count += 1
    if data.urgent and not issue.urgent:  # e.g. a rider reports the leak as a burst main: it is urgent now
        issue.urgent = True
        ack = now + timedelta(minutes=get_config().urgent_ack_minutes)
        if issue.first_responded_at is None and (
            issue.first_response_due_at is None or issue.first_response_due_at > ack
        ):
            issue.first_response_due_at = ack
    if data.photo_urls:
        issue.photo_urls = [*issue.photo_urls, *data.photo_urls][:30]
    _touch(issue, now)
    # A private report's words stay with staff.
    record(
        uow,
        issue,
        "duplicate_attached",
        None,
        data.description[:500] or None,
        actor=data.reporter,
        actor_role=data.actor_role or data.channel,
        internal=not data.is_public,
        data={"channel": data.channel, **({"origin": origin.model_dump()} if origin else {})},
    )
    if origin is not None:
        issue.linked = [*issue.linked, origin.model_dump()]
        uow.emit(IssueLinked(attached=[origin], reason="duplicate", **_fact(issue, data.reporter)))


async def _photo_urls(uow: UnitOfWork, who: Principal, ids: list[UUID]) -> list[str]:
    return await owned_photo_paths(uow, Photo, "issues", who.sub, ids)


def _channel_for(who: Principal, data: IssueCreate) -> Channel:
    wanted = data.channel
    if wanted == "patrol":
        if not (is_staff(who) or who.has(Role.grid_worker) or "team:patrol" in who.scopes):
            raise Problem(
                403,
                "not_a_patrol_member",
                "Not a patrol member",
                "Only patrol volunteers (scope team:patrol), grid workers and staff report as a patrol.",
            )
        return Channel.patrol
    if is_staff(who):
        return Channel.staff
    if who.has(Role.grid_worker):
        return Channel.grid_worker
    if wanted in ("staff", "grid_worker"):
        raise Problem(403, "channel_not_allowed", "Channel not allowed", f"Your role cannot report as {wanted}.")
    return Channel.resident


async def report_issue(
    uow: UnitOfWork,
    who: Principal,
    data: IssueCreate,
    *,
    cipher: FieldCipher,
    channel: Channel | None = None,
    open311_token: str | None = None,
    reporter: str | None = None,
) -> tuple[IssueLike, bool, Category]:
    """A resident, staff member, grid worker or patrol volunteer reports a problem through the API."""
    channel = channel or _channel_for(who, data)
    cat = await require_category(uow, data.category)
    attributes = validate_attributes(cat, data.attributes)
    if data.contact is not None and not is_staff(who) and channel != Channel.open311:
        raise Problem(
            403,
            "contact_staff_only",
            "Only staff report for someone else",
            "Leave out `contact`; your own account is the reporter.",
        )
    if data.latitude is None and not data.address and not data.community:
        raise Problem(
            422,
            "location_required",
            "Where is it?",
            "Give latitude/longitude, an address or a community.",
            errors=[{"field": "latitude", "message": "a location is required", "type": "missing"}],
        )
    community = await resolve_community(uow, data.community, data.latitude, data.longitude)
    if is_staff(who) and channel == Channel.staff and not who.covers(community, data.compound):
        raise Problem(403, "outside_scope", "Outside your scope", "You may only report within your communities.")
    # Open311's media_url (checked there: https on a public host) is the one way a URL still comes in.
    photos = [*data.photo_urls, *await _photo_urls(uow, who, data.photo_ids)]
    contact = data.contact
    issue_id = uuid7()  # known before the insert: the contact details are sealed for this issue's row
    return (
        *await intake(
            uow,
            Intake(
                issue_id=issue_id,
                category=cat,
                title=data.title or cat.name_zh,
                description=data.description,
                channel=channel,
                reporter=reporter or who.sub,
                latitude=data.latitude,
                longitude=data.longitude,
                address=data.address,
                community=community,
                compound=data.compound,
                is_public=data.is_public,
                photo_urls=photos,
                attributes=attributes,
                intake=data.intake or ("app" if channel != Channel.staff else None),
                contact_name=cipher.seal(contact.name, "issues", "contact_name", issue_id)
                if contact and contact.name
                else None,
                contact_phone=cipher.seal(contact.phone, "issues", "contact_phone", issue_id)
                if contact and contact.phone
                else None,
                actor_role=role_of(who),
                open311_token=open311_token,
            ),
        ),
        cat,
    )


async def intake_hazard_report(uow: UnitOfWork, report: HazardReported) -> IssueLike | None:
    """A rider's hazard report becomes an issue (urgent for fire, gas and water leaks), or joins the open issue
    it duplicates. Idempotent on the report."""
    origin = Origin(service="points", kind="hazard_report", id=str(report.report_id))
    cat = await category_or_default(uow, report.category, urgent=report.urgent)
    dedupes = _dedupes(cat, report.latitude, report.longitude)
    keys = (
        _dedupe_keys(cat.code, report.latitude, report.longitude, get_config().dedupe_radius_m)
        if dedupes and report.latitude is not None and report.longitude is not None
        else None
    )
    if await issue_for_origin(uow, origin, lock_keys=keys) is not None:
        return None
    community = await resolve_community(uow, report.community, report.latitude, report.longitude, strict=False)
    issue, _ = await intake(
        uow,
        Intake(
            category=cat,
            title=HAZARD_TITLES.get(report.category, HAZARD_TITLES["other"]),
            description=report.description,
            channel=Channel.rider,
            reporter=f"rider:{report.rider_id}",
            latitude=report.latitude,
            longitude=report.longitude,
            address=report.address,
            community=community,
            compound=report.compound,
            origin=origin,
            urgent=report.urgent,
            photo_urls=report.photo_urls,
            actor_role="rider",
        ),
        locked=dedupes,
    )
    return issue


async def intake_need(uow: UnitOfWork, need: NeedEscalated) -> IssueLike | None:
    """A visit need the community could not solve on the spot. Idempotent on the need."""
    origin = Origin(service="visits", kind="need", id=str(need.need_id))
    if await issue_for_origin(uow, origin) is not None:
        return None
    cat = await category_or_default(uow, need.category, urgent=need.urgency == "urgent")
    issue, _ = await intake(
        uow,
        Intake(
            category=cat,
            title=need.title,
            description=need.description,
            channel=Channel.grid_worker,
            reporter=need.escalated_by,
            latitude=need.latitude,
            longitude=need.longitude,
            address=need.address,
            community=need.community,
            compound=need.compound,
            origin=origin,
            urgent=need.urgency == "urgent",
            is_public=False,  # a household's need is not for the public list
            attributes={"urgency": need.urgency},
            actor_role="grid_worker",
        ),
    )
    return issue


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
        data = {name: values[name] for name in _PUBLIC_COLUMNS}
    else:
        data = {name: getattr(issue, name) for name in _PUBLIC_COLUMNS}
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
        data = dict(zip(_PUBLIC_COLUMNS, row, strict=False))  # LIST_COLUMNS start with the public ones
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
    t = _TIMELINE.c
    query = sa.select(*(t[name] for name in _TIMELINE_COLUMNS)).where(t.issue_id == sa.bindparam("issue_id"))
    if not with_internal:
        query = query.where(t.internal.is_(False))
    return query.order_by(t.at, t.id)


async def timeline(uow: UnitOfWork, who: Principal, issue: IssueLike) -> list[TimelineEntryPublic]:
    """The issue's timeline as ``who`` may see it, read as plain rows (no ORM objects to track or flush)."""
    staff = works_on(who, issue)
    connection = await uow.session.connection()
    rows = await connection.execute(_timeline_statement(staff), {"issue_id": issue.id})
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
    sa.select(*LIST_COLUMNS, *(_TIMELINE.c[name].label(f"entry_{name}") for name in _TIMELINE_COLUMNS))
    .select_from(ISSUES.outerjoin(_TIMELINE, _TIMELINE.c.issue_id == ISSUES.c.id))
    .where(ISSUES.c.id == sa.bindparam("issue_id"))
    .order_by(_TIMELINE.c.at, _TIMELINE.c.id)
)


async def read_issue(uow: UnitOfWork, who: Principal, issue_id: UUID) -> tuple[sa.Row[Any], list[TimelineEntryPublic]]:
    """An issue to show (not to change) as a row of ``LIST_COLUMNS``, with its timeline as ``who`` may see it;
    404 if they may not see the issue."""
    connection = await uow.session.connection()
    rows = (await connection.execute(_ISSUE_WITH_TIMELINE, {"issue_id": issue_id})).all()
    if not rows or not await can_see(uow, who, rows[0]):
        raise not_found("issue", issue_id)
    issue, start = rows[0], len(LIST_COLUMNS)
    staff = works_on(who, issue)
    internal = start + _TIMELINE_COLUMNS.index("internal")
    shown = [r for r in rows if r[start] is not None and (staff or not r[internal])]
    return issue, _entries(shown, start, staff, who)


@dataclass
class IssueFilters:
    status: list[IssueStatus] | None = None
    community: str | None = None
    compound: str | None = None
    category: str | None = None
    channel: Channel | None = None
    urgent: bool | None = None
    overdue: bool | None = None
    department: str | None = None
    mine: bool = False
    near: tuple[float, float, float] | None = None  # lat, lng, radius_m
    created_from: datetime | None = None
    created_to: datetime | None = None


# Lists are read with statements built once per *shape* (which clauses a query has), the values bound per
# request: building a select() tree and computing its cache key costs more than running it.


class ListShape(NamedTuple):
    """Which clauses a list query has; ``list_query`` fills in the values."""

    visible: str  # mine | all | staff | grid_worker | public
    communities: bool = False  # staff: the scope names communities / compounds / departments
    compounds: bool = False
    departments: bool = False
    status: bool = False
    community: bool = False
    compound: bool = False
    category: bool = False
    channel: bool = False
    urgent: bool = False
    department: bool = False
    overdue: bool | None = None
    near: bool = False
    created_from: bool = False
    created_to: bool = False


def _mine() -> sa.CompoundSelect:
    # Issues you reported (the reporter column) or were credited on / follow (issue_reporters): a UNION, so
    # PostgreSQL reads both through their indexes (an OR of the two would scan every issue).
    return sa.union(
        sa.select(ISSUES.c.id).where(ISSUES.c.reporter == sa.bindparam("sub")),
        sa.select(IssueReporter.__table__.c.issue_id).where(IssueReporter.__table__.c.subject == sa.bindparam("sub")),  # type: ignore[attr-defined]
    )  # type: ignore[attr-defined]


def _assigned_to(param: str) -> sa.Select[Any]:
    a = IssueAssignment.__table__.c  # type: ignore[attr-defined]
    return sa.select(a.issue_id).where(a.department.in_(sa.bindparam(param, expanding=True)), a.active.is_(True))


def _in(column: sa.Column[Any], param: str) -> sa.ColumnElement[bool]:
    return column.in_(sa.bindparam(param, expanding=True))


@functools.cache
def where_clauses(shape: ListShape) -> tuple[sa.ColumnElement[bool], ...]:
    """The WHERE clauses of a list (visibility, then filters) with named bound parameters (``list_query``)."""
    c = ISSUES.c
    live = c.status != IssueStatus.merged.value  # a merged report's reporters follow the issue that stays
    where: list[Any] = []
    if shape.visible == "mine":
        where += [c.id.in_(_mine()), live]
    elif shape.visible == "staff":
        ors = (
            ([_in(c.community, "v_communities")] if shape.communities else [])
            + ([_in(c.compound, "v_compounds")] if shape.compounds else [])
            + ([c.id.in_(_assigned_to("v_departments"))] if shape.departments else [])
        )
        where.append(sa.or_(*ors) if ors else sa.false())
    elif shape.visible == "grid_worker":
        where.append(
            sa.or_(
                _in(c.community, "v_communities"),
                _in(c.compound, "v_compounds"),
                c.is_public.is_(True),
                c.id.in_(_mine()),
            )
        )
    elif shape.visible == "public":
        where += [live, sa.or_(c.is_public.is_(True), c.id.in_(_mine()))]
    if shape.status:
        where.append(_in(c.status, "statuses"))
    for name in ("community", "compound", "category", "channel", "urgent"):
        if getattr(shape, name):
            where.append(c[name] == sa.bindparam(name, type_=c[name].type))
    if shape.department:
        where.append(c.id.in_(_assigned_to("departments")))
    if shape.overdue is not None:
        now = sa.bindparam("now", type_=c.created_at.type)
        late = sa.and_(
            c.closed_at.is_(None),
            sa.or_(
                c.escalation_level > 0,
                c.resolution_due_at < now,
                sa.and_(c.first_responded_at.is_(None), c.first_response_due_at < now),
            ),
        )
        where.append(late if shape.overdue else sa.not_(late))
    if shape.near:
        where += [
            c.latitude.between(sa.bindparam("south"), sa.bindparam("north")),
            c.longitude.between(sa.bindparam("west"), sa.bindparam("east")),
        ]
    if shape.created_from:
        where.append(c.created_at >= sa.bindparam("created_from", type_=c.created_at.type))
    if shape.created_to:
        where.append(c.created_at < sa.bindparam("created_to", type_=c.created_at.type))
    return tuple(where)


def list_query(who: Principal, f: IssueFilters, now: datetime) -> tuple[ListShape, dict[str, Any]]:
    """The shape of ``who``'s list with filters ``f``, and the values of its parameters."""
    params: dict[str, Any] = {"sub": who.sub}
    if f.mine:
        visible = "mine"
    elif who.is_admin and (is_staff(who) or not who.has(Role.resident, Role.rider, Role.grid_worker)):
        visible = "all"
    elif is_staff(who):
        visible = "staff"
    elif who.has(Role.grid_worker) and (who.scoped_values("community") or who.scoped_values("compound")):
        visible = "grid_worker"
    else:
        visible = "public"
    scoped = {
        "communities": who.scoped_values("community"),
        "compounds": who.scoped_values("compound"),
        "departments": who.scoped_values("department") if visible == "staff" else set(),
    }
    for name, values in scoped.items():
        params[f"v_{name}"] = sorted(values)
    if f.status:
        params["statuses"] = [s.value for s in f.status]
    for name in ("community", "compound", "category", "channel", "urgent"):
        params[name] = getattr(f, name)
    params["departments"] = [f.department]
    if f.overdue is not None:
        params["now"] = now
    if f.near is not None:
        params["south"], params["north"], params["west"], params["east"] = bounding_box(*f.near)
    params["created_from"], params["created_to"] = f.created_from, f.created_to
    shape = ListShape(
        visible,
        communities=bool(scoped["communities"]),
        compounds=bool(scoped["compounds"]),
        departments=bool(scoped["departments"]),
        status=bool(f.status),
        community=f.community is not None,
        compound=f.compound is not None,
        category=f.category is not None,
        channel=f.channel is not None,
        urgent=f.urgent is not None,
        department=f.department is not None,
        overdue=f.overdue,
        near=f.near is not None,
        created_from=f.created_from is not None,
        created_to=f.created_to is not None,
    )
    return shape, params


def visibility(who: Principal, f: IssueFilters) -> list[Any]:
    """What ``who`` may see, with the values bound (for queries of their own, e.g. the CSV export)."""
    shape, params = list_query(who, IssueFilters(mine=f.mine), utcnow())
    return [clause.params(params) for clause in where_clauses(shape)]


def filter_clauses(f: IssueFilters, now: datetime) -> list[Any]:
    """The filters of ``f``, with the values bound (for queries of their own, e.g. the CSV export)."""
    anyone = Principal(sub="", roles=frozenset({Role.admin}))
    shape, params = list_query(anyone, dataclasses.replace(f, mine=False), now)
    return [clause.params(params) for clause in where_clauses(shape)]


@functools.cache
def _list_statement(shape: ListShape, after_cursor: bool) -> sa.Select[Any]:
    c = ISSUES.c
    query = sa.select(*LIST_COLUMNS).where(*where_clauses(shape))
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
    uow: UnitOfWork, who: Principal, *, limit: int, cursor: str | None, filters: IssueFilters | None = None
) -> Page[Any]:
    """A page of plain rows (``LIST_COLUMNS``): read them with ``public_rows`` (or ``public_view``)."""
    f = filters or IssueFilters()
    shape, params = list_query(who, f, utcnow())
    params["limit"] = limit + 1
    if cursor:
        params["after_created"], params["after_id"] = decode_cursor(cursor, datetime, UUID)
    # Core rows on the session's connection: the ORM's result machinery adds nothing for plain columns.
    connection = await uow.session.connection()
    rows = list((await connection.execute(_list_statement(shape, bool(cursor)), params)).all())
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


async def escalations(uow: UnitOfWork, who: Principal, *, limit: int, cursor: str | None) -> Page[Issue]:
    """Open issues escalated for being overdue, most escalated and longest overdue first (sub-district)."""
    query = select(Issue).where(
        *visibility(who, IssueFilters()), col(Issue.escalation_level) > 0, col(Issue.closed_at).is_(None)
    )
    if cursor:
        level, due, ident = decode_cursor(cursor, int, datetime, UUID)
        query = query.where(
            sa.or_(
                col(Issue.escalation_level) < level,
                sa.and_(col(Issue.escalation_level) == level, col(Issue.resolution_due_at) > due),
                sa.and_(
                    col(Issue.escalation_level) == level, col(Issue.resolution_due_at) == due, col(Issue.id) > ident
                ),
            )
        )
    query = query.order_by(col(Issue.escalation_level).desc(), col(Issue.resolution_due_at), col(Issue.id)).limit(
        limit + 1
    )
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda i: encode_cursor(i.escalation_level, i.resolution_due_at, i.id))


# --- staff workflow -----------------------------------------------------------------------------------------


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise Problem(403, "not_allowed", "Not allowed on this issue", what)


def _transition(issue: Issue, allowed_from: Iterable[IssueStatus], to: IssueStatus) -> datetime:
    allowed = {s.value for s in allowed_from}
    if issue.status not in allowed:
        raise conflict(
            "invalid_transition",
            f"An issue that is {issue.status} cannot become {to}.",
            current=issue.status,
            allowed_from=sorted(allowed),
        )
    issue.status = to
    return _touch(issue)


async def _note(uow: UnitOfWork, issue: Issue, body: StaffNote | None) -> str | None:
    if body is None:
        return None
    if body.template:
        text = await render_template(uow, body.template, issue)
        return f"{text}\n{body.note}" if body.note else text
    return body.note


def _accepted(uow: UnitOfWork, who: Principal, issue: Issue, now: datetime, note: str | None = None) -> None:
    issue.status = IssueStatus.accepted
    _responded(issue, now)
    record(uow, issue, "accepted", who, note)
    uow.emit(IssueAccepted(**_fact(issue, who.sub)))


async def accept(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    _require(manages(who, issue), "Only staff of the issue's community accept it.")
    if issue.status != IssueStatus.submitted:
        raise conflict(
            "invalid_transition",
            f"An issue that is {issue.status} cannot become accepted.",
            current=issue.status,
            allowed_from=[IssueStatus.submitted.value],
        )
    now = _touch(issue)
    note = await _note(uow, issue, body)
    _accepted(uow, who, issue, now, note)
    if note:
        issue.status_note = note
    return issue


async def verify(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    _require(works_on(who, issue), "Only staff handling the issue verify it.")
    if issue.status not in OPEN_STATUSES:
        raise conflict(
            "invalid_transition",
            f"An issue that is {issue.status} cannot be verified.",
            current=issue.status,
            allowed_from=sorted(OPEN_STATUSES),
        )
    if issue.verified_at is not None:
        raise conflict("already_verified", "This issue was already verified on site.")
    now = _touch(issue)
    note = await _note(uow, issue, body)
    if issue.status == IssueStatus.submitted:
        _accepted(uow, who, issue, now)
    _responded(issue, now)
    issue.verified_at = now
    record(uow, issue, "verified", who, note)
    uow.emit(IssueVerified(note=note, **_fact(issue, who.sub)))
    return issue


async def assign(uow: UnitOfWork, who: Principal, issue: Issue, body: Assignment) -> Issue:
    _require(manages(who, issue), "Only staff of the issue's community dispatch it.")
    codes = list(dict.fromkeys(body.departments))
    rows = await uow.session.execute(
        select(Department.code).where(col(Department.code).in_(codes), col(Department.active).is_(True))
    )
    unknown = set(codes) - set(rows.scalars())
    if unknown:
        raise Problem(
            422,
            "unknown_department",
            "Unknown department",
            f"No active department {sorted(unknown)}.",
            errors=[{"field": "departments", "message": "unknown", "type": "value_error"}],
        )
    was_submitted = issue.status == IssueStatus.submitted
    now = _transition(
        issue,
        {
            IssueStatus.submitted,
            IssueStatus.accepted,
            IssueStatus.assigned,
            IssueStatus.in_progress,
            IssueStatus.reopened,
        },
        IssueStatus.assigned,
    )
    note = await _note(uow, issue, body)
    if was_submitted:
        _accepted(uow, who, issue, now)
        issue.status = IssueStatus.assigned
    existing = {
        a.department: a
        for a in (
            await uow.session.execute(select(IssueAssignment).where(IssueAssignment.issue_id == issue.id))
        ).scalars()
    }
    for code, a in existing.items():
        a.active = code in codes
        a.lead = code == codes[0]
    for code in codes:
        if code not in existing:
            uow.session.add(IssueAssignment(issue_id=issue.id, department=code, lead=code == codes[0], assigned_at=now))
    issue.departments = codes
    issue.officer = body.officer
    _responded(issue, now)
    record(uow, issue, "assigned", who, note, data={"departments": codes, "officer": body.officer})
    uow.emit(IssueAssigned(departments=codes, officer=body.officer, **_fact(issue, who.sub)))
    return issue


async def start(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    _require(works_on(who, issue), "Only the assigned department or community staff start work.")
    now = _transition(
        issue, {IssueStatus.accepted, IssueStatus.assigned, IssueStatus.reopened}, IssueStatus.in_progress
    )
    _responded(issue, now)
    note = await _note(uow, issue, body)
    if note:
        issue.status_note = note
    record(uow, issue, "in_progress", who, note)
    return issue


async def resolve(uow: UnitOfWork, who: Principal, issue: Issue, body: Resolution | StaffNote | None) -> Issue:
    _require(works_on(who, issue), "Only staff handling the issue resolve it.")
    now = _transition(issue, OPEN_STATUSES, IssueStatus.resolved)
    note = await _note(uow, issue, body)
    photos = await _photo_urls(uow, who, body.photo_ids) if isinstance(body, Resolution) else []
    _responded(issue, now)
    issue.resolved_at = now
    issue.closed_at = now
    issue.status_note = note or issue.status_note
    record(uow, issue, "resolved", who, note, data={"photo_urls": photos} if photos else None)
    uow.emit(IssueResolved(note=note, **_fact(issue, who.sub)))
    return issue


async def reject(uow: UnitOfWork, who: Principal, issue: Issue, body: Rejection) -> Issue:
    _require(manages(who, issue) or works_on(who, issue), "Only staff handling the issue reject it.")
    now = _transition(issue, OPEN_STATUSES, IssueStatus.rejected)
    reason = await _note(uow, issue, StaffNote(note=body.reason, template=body.template)) or ""
    _responded(issue, now)
    _close(issue, IssueStatus.rejected, now)
    issue.status_note = reason
    record(uow, issue, "rejected", who, reason, data={"false_report": body.false_report})
    uow.emit(IssueRejected(reason=reason, false_report=body.false_report, **_fact(issue, who.sub)))
    return issue


async def redirect(uow: UnitOfWork, who: Principal, issue: Issue, body: Redirect) -> Issue:
    """Not ours: tell the resident where to go instead (a helpful answer, not a dead ticket)."""
    _require(manages(who, issue), "Only staff of the issue's community redirect it.")
    go_to = body.go_to
    if body.matter:
        matter = await uow.session.get(NotHandledMatter, body.matter)
        if matter is None:
            raise not_found("not_handled_matter", body.matter)
        go_to = go_to or f"{matter.go_to_zh} / {matter.go_to_en}"
    now = _transition(
        issue, {IssueStatus.submitted, IssueStatus.accepted, IssueStatus.reopened}, IssueStatus.redirected
    )
    note = await _note(uow, issue, body)
    _responded(issue, now)
    _close(issue, IssueStatus.redirected, now)
    issue.redirect_to = go_to
    reason = f"Not handled here: {go_to}" + (f" ({note})" if note else "")
    issue.status_note = reason
    record(uow, issue, "redirected", who, reason, data={"go_to": go_to, "matter": body.matter})
    uow.emit(IssueRejected(reason=reason, false_report=False, redirect_to=go_to, **_fact(issue, who.sub)))
    return issue


async def close_unresolved(uow: UnitOfWork, who: Principal, issue: Issue, body: CloseUnresolved) -> Issue:
    _require(works_on(who, issue), "Only staff handling the issue close it.")
    now = _transition(issue, OPEN_STATUSES, IssueStatus.closed_unresolved)
    reason = await _note(uow, issue, StaffNote(note=body.reason, template=body.template)) or body.reason
    _responded(issue, now)
    _close(issue, IssueStatus.closed_unresolved, now)
    issue.status_note = reason
    record(uow, issue, "closed_unresolved", who, reason)
    uow.emit(IssueClosedUnresolved(reason=reason, **_fact(issue, who.sub)))
    return issue


async def comment(uow: UnitOfWork, who: Principal, issue: Issue, body: str, internal: bool) -> TimelineEntry:
    staff = works_on(who, issue)
    if internal and not staff:
        raise Problem(403, "internal_staff_only", "Internal notes are for staff", "Leave out `internal`.")
    if not staff and not await is_participant(uow, who, issue):
        raise Problem(
            403,
            "not_a_participant",
            "Follow the issue to comment",
            "Only reporters, followers and staff comment; POST …/follow first.",
        )
    now = _touch(issue)
    if staff and not internal:
        _responded(issue, now)
    entry = TimelineEntry(
        issue_id=issue.id,
        action="comment",
        actor=who.sub,
        actor_role=role_of(who),
        note=body,
        internal=internal,
        at=now,
    )
    uow.session.add(entry)
    return entry


async def follow(uow: UnitOfWork, who: Principal, issue: Issue) -> bool:
    if await is_participant(uow, who, issue):
        return False
    uow.session.add(IssueReporter(issue_id=issue.id, subject=who.sub, role="follower", channel=None))
    record(uow, issue, "followed", who)
    return True


# --- the reporter's side ------------------------------------------------------------------------------------


async def confirm(uow: UnitOfWork, who: Principal, issue: Issue, body: Confirmation) -> Issue:
    if not await is_reporter(uow, who, issue):
        raise Problem(403, "not_the_reporter", "Only a reporter confirms", "You did not report this issue.")
    now = _transition(issue, {IssueStatus.resolved}, IssueStatus.confirmed)
    issue.confirmed_at = now
    issue.rating = body.rating
    record(uow, issue, "confirmed", who, body.comment, data={"rating": body.rating})
    uow.emit(IssueConfirmed(rating=body.rating, auto=False, **_fact(issue, who.sub)))
    return issue


async def reopen(
    uow: UnitOfWork, who: Principal, issue: Issue, body: Reopening, cfg: IssuesConfig | None = None
) -> Issue:
    cfg = cfg or get_config()
    staff = manages(who, issue)
    if not staff:
        if not await is_reporter(uow, who, issue):
            raise Problem(403, "not_the_reporter", "Only a reporter reopens", "You did not report this issue.")
        if issue.resolved_at and utcnow() - issue.resolved_at > timedelta(days=cfg.reopen_window_days):
            raise conflict(
                "reopen_window_passed",
                f"Issues can be reopened within {cfg.reopen_window_days:g} days of their resolution; "
                "please report it again.",
            )
    now = _transition(issue, {IssueStatus.resolved, IssueStatus.confirmed}, IssueStatus.reopened)
    cat = await category_or_default(uow, issue.category, urgent=issue.urgent)
    issue.resolution_due_at = now + timedelta(hours=cat.resolution_hours)
    issue.resolution_overdue_at = None
    issue.escalation_level = 0
    issue.closed_at = issue.confirmed_at = issue.rating = None  # type: ignore[assignment]
    issue.reopen_count += 1
    issue.status_note = body.reason
    record(uow, issue, "reopened", who, body.reason)
    uow.emit(IssueReopened(reason=body.reason, **_fact(issue, who.sub)))
    return issue


# --- merge and split ----------------------------------------------------------------------------------------


async def merge(uow: UnitOfWork, who: Principal, source: Issue, body: MergeRequest) -> Issue:
    """Merge ``source`` (a duplicate) into ``body.into``: its reporters and origins follow the target."""
    if body.into == source.id:
        raise conflict("merge_into_itself", "An issue cannot be merged into itself.")
    target = await get_issue(uow, who, body.into, for_update=True)
    _require(manages(who, source) and manages(who, target), "Only staff of both issues' communities merge them.")
    if target.status not in OPEN_STATUSES:
        raise conflict("target_not_open", f"The issue to merge into is {target.status}; reopen it first.")
    now = _transition(source, OPEN_STATUSES, IssueStatus.merged)
    _close(source, IssueStatus.merged, now)
    source.merged_into = target.id
    moved = [o for o in [_origin(source)] if o is not None] + [Origin(**o) for o in source.linked]
    await uow.session.execute(
        sa.update(IssueReporter).where(col(IssueReporter.issue_id) == source.id).values(issue_id=target.id)
    )
    await uow.session.execute(
        sa.update(IssueAssignment).where(col(IssueAssignment.issue_id) == source.id).values(active=False)
    )
    target.reporter_count += source.reporter_count
    target.linked = [*target.linked, *(o.model_dump() for o in moved)]
    target.urgent = target.urgent or source.urgent
    target.photo_urls = [*target.photo_urls, *source.photo_urls][:30]
    _touch(target, now)
    record(uow, source, "merged", who, body.note, data={"into": str(target.id)})
    record(uow, target, "merged_in", who, body.note, data={"from": str(source.id)})
    uow.emit(IssueMerged(into_issue_id=target.id, **_fact(source, who.sub)))
    if moved:
        uow.emit(IssueLinked(attached=moved, reason="merge", **_fact(target, who.sub)))
    return target


async def split(uow: UnitOfWork, who: Principal, issue: Issue, body: SplitRequest) -> Issue:
    """A report attached by mistake becomes an issue of its own."""
    _require(manages(who, issue), "Only staff of the issue's community split it.")
    if issue.status in (IssueStatus.merged,):
        raise conflict("invalid_transition", "A merged issue cannot be split; split its target.")
    query = select(IssueReporter).where(IssueReporter.issue_id == issue.id, IssueReporter.role == "reporter")
    query = (
        query.where(IssueReporter.subject == body.subject)
        if body.subject
        else query.where(IssueReporter.origin_id == body.origin_id)
    )
    rows = list((await uow.session.execute(query)).scalars())
    primary = [r for r in rows if (r.subject == issue.reporter and r.origin_id == issue.origin_id)]
    rows = [r for r in rows if r not in primary]
    if not rows:
        raise Problem(
            404,
            "reporter_not_found",
            "No such attached report",
            "Name a reporter attached as a duplicate (the first reporter stays with the issue).",
        )
    row = rows[0]
    cat = await category_or_default(uow, body.category or issue.category, urgent=issue.urgent)
    now = utcnow()
    origin = (
        Origin(service=row.origin_service, kind=row.origin_kind, id=row.origin_id)
        if row.origin_service and row.origin_kind and row.origin_id
        else None
    )
    first_due, resolution_due = deadlines(cat, issue.urgent, now, get_config())
    new = Issue(
        title=body.title or issue.title,
        description=issue.description,
        category=cat.code,
        latitude=issue.latitude,
        longitude=issue.longitude,
        address=issue.address,
        community=issue.community,
        compound=issue.compound,
        channel=row.channel or issue.channel,
        urgent=issue.urgent,
        is_public=issue.is_public,
        reporter=row.subject,
        origin_service=origin.service if origin else None,
        origin_kind=origin.kind if origin else None,
        origin_id=origin.id if origin else None,
        created_at=now,
        updated_at=now,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
    )
    uow.session.add(new)
    await uow.session.flush()
    row.issue_id = new.id
    issue.reporter_count = max(1, issue.reporter_count - 1)
    if origin is not None:
        issue.linked = [o for o in issue.linked if o != origin.model_dump()]
    _touch(issue, now)
    record(uow, issue, "split", who, body.note, data={"into": str(new.id), "subject": row.subject})
    record(uow, new, "submitted", who, body.note, data={"split_from": str(issue.id)}, at=now)
    uow.emit(IssueCreated(title=new.title, **_fact(new, who.sub)))
    return new


# --- Open311 tokens -----------------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(12)
