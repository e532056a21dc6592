"""Intake: the one way an issue opens. A report from any channel — a resident's or staff member's report
(``reporting``), a rider's hazard report or a grid worker's escalated need (``referrals``), Open311 — opens an
issue with deadlines from its category, or joins the open issue it duplicates (``duplicates``), crediting the
reporter. Use cases take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlmodel import SQLModel

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import IssueCreated, IssueFollowed, IssueLinked
from minsheng.platform.auth import Principal
from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.issues import config
from services.issues.access import ISSUES, LIST_COLUMNS, TIMELINE, IssueLike, is_reporter
from services.issues.config import IssuesSettings
from services.issues.duplicates import dedupes, find_duplicate
from services.issues.models import Category, Channel, Issue, IssueReporter, TimelineEntry
from services.issues.timeline import fact, record, touch


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


def deadlines(category: Category, urgent: bool, start: datetime, cfg: IssuesSettings) -> tuple[datetime, datetime]:
    minutes = category.first_response_minutes
    if urgent:
        minutes = min(minutes, cfg.urgent_ack_minutes)
    return start + timedelta(minutes=minutes), start + timedelta(hours=category.resolution_hours)


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


async def intake(
    uow: UnitOfWork,
    data: Intake,
    *,
    now: datetime | None = None,
    cfg: IssuesSettings | None = None,
    locked: bool = False,
) -> tuple[IssueLike, bool]:
    """Open an issue, or attach the report to the open issue it duplicates. Returns (issue, attached): a new
    issue as a row of ``LIST_COLUMNS`` (written with Core: no ORM object to build and flush). ``locked``: the
    caller took the report's dedupe locks already (``issue_for_origin``)."""
    cfg = cfg or config.get()
    now = now or utcnow()
    cat = data.category
    urgent = data.urgent or cat.urgent
    if dedupes(cat, data.latitude, data.longitude):
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
        ack = now + timedelta(minutes=config.get().urgent_ack_minutes)
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
