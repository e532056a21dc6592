"""Intake from every channel: a resident's or staff member's report, a rider's hazard report, a grid worker's
escalated need, Open311 — deadlines from the category, duplicates joined under a lock, the photos attached.
Use cases take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.dialects import postgresql
from sqlmodel import SQLModel

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import (
    IssueCreated,
    IssueFollowed,
    IssueLinked,
)
from minsheng.contracts.points import HazardReported
from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.auth import Principal, Role
from minsheng.platform.coords import bounding_box, distance_m
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.photos import owned_photo_paths
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.sql import one_of, table_of
from minsheng.platform.uow import UnitOfWork
from services.issues.access import (
    ISSUES,
    LIST_COLUMNS,
    REPORTERS,
    TIMELINE,
    IssueLike,
    is_reporter,
    is_staff,
    role_of,
)
from services.issues.catalogue import (
    category_or_default,
    require_category,
    resolve_community,
    validate_attributes,
)
from services.issues.config import IssuesConfig, get_config
from services.issues.models import (
    OPEN_STATUSES,
    Category,
    Channel,
    Issue,
    IssueCreate,
    IssueReporter,
    Photo,
    TimelineEntry,
)
from services.issues.timeline import fact, record, touch

HAZARD_TITLES = {
    "fire": "Fire reported by a rider",
    "gas_leak": "Gas leak reported by a rider",
    "water_leak": "Water leak reported by a rider",
    "road": "Road hazard reported by a rider",
    "other": "Hazard reported by a rider",
}


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
        await uow.execute(_DEDUPE_LOCK, {"keys": _dedupe_keys(category, lat, lng, cfg.dedupe_radius_m)})
    south, north, west, east = bounding_box(lat, lng, cfg.dedupe_radius_m)
    rows = await uow.fetch(
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
    for ident, issue_lat, issue_lng in map(tuple, rows):
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
    rest = ([_insert(table_of(IssueReporter), "r_")] if with_reporter else []) + [_insert(TIMELINE, "t_")]
    if not postgres:
        return (issue, *rest)
    written = issue.cte("issue")
    ctes = [statement.cte(f"w{n}") for n, statement in enumerate(rest)]
    return (sa.select(*(written.c[c.name] for c in LIST_COLUMNS)).add_cte(written, *ctes),)


_ISSUE_FOR_ORIGIN = sa.select(REPORTERS.issue_id).where(
    REPORTERS.origin_service == sa.bindparam("service"),
    REPORTERS.origin_kind == sa.bindparam("kind"),
    REPORTERS.origin_id == sa.bindparam("id"),
)
# The same, taking the report's dedupe locks in the same round trip (the duplicate search comes after them).
_LOCK_AND_ISSUE_FOR_ORIGIN = sa.select(_ISSUE_FOR_ORIGIN.scalar_subquery(), _DEDUPE_LOCK.scalar_subquery())


def _dedupes(category: Category, lat: float | None, lng: float | None) -> bool:
    return category.dedupe and lat is not None and lng is not None


async def issue_for_origin(uow: UnitOfWork, origin: Origin, *, lock_keys: list[str] | None = None) -> UUID | None:
    """The issue a report from another service became. With ``lock_keys`` (PostgreSQL) it also takes those
    dedupe locks, which ``intake`` then need not take again."""
    params = {"service": origin.service, "kind": origin.kind, "id": origin.id}
    if lock_keys and uow.db.is_postgres:
        found = await uow.fetchrow(_LOCK_AND_ISSUE_FOR_ORIGIN, {**params, "keys": lock_keys})
    else:
        found = await uow.fetchrow(_ISSUE_FOR_ORIGIN, params)
    return found[0] if found is not None else None


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
    first, *rest = _intake_statements(uow.db.is_postgres, bool(data.reporter))
    row = (await uow.fetch(first, params))[0]
    for statement in rest:
        await uow.execute(statement, params)
    uow.emit(IssueCreated(title=row.title, **fact(row, data.reporter)))
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
    if data.reporter:
        uow.emit(IssueFollowed(issue_id=issue.id, subject=data.reporter, role="reporter", occurred_at=now))
    if data.urgent and not issue.urgent:  # e.g. a rider reports the leak as a burst main: it is urgent now
        issue.urgent = True
        ack = now + timedelta(minutes=get_config().urgent_ack_minutes)
        if issue.first_responded_at is None and (
            issue.first_response_due_at is None or issue.first_response_due_at > ack
        ):
            issue.first_response_due_at = ack
    if data.photo_urls:
        issue.photo_urls = [*issue.photo_urls, *data.photo_urls][:30]
    touch(issue, now)
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
        uow.emit(IssueLinked(attached=[origin], reason="duplicate", **fact(issue, data.reporter)))


async def photo_urls_of(uow: UnitOfWork, who: Principal, ids: list[UUID]) -> list[str]:
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
        raise Problem(
            403, "channel_not_allowed", "Channel not allowed", _t("Your role cannot report as {wanted}.", wanted=wanted)
        )
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
    photos = [*data.photo_urls, *await photo_urls_of(uow, who, data.photo_ids)]
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


def new_token() -> str:
    return secrets.token_urlsafe(12)
