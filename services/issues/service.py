"""Use cases of the issues service. They take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import IssueCreated, IssueRejected, IssueResolved, IssueVerified
from minsheng.contracts.points import HazardReported
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import conflict, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.uow import UnitOfWork
from services.issues.models import (
    Channel,
    Issue,
    IssueCreate,
    IssueStatus,
    Rejection,
    TimelineEntry,
)

HAZARD_TITLES = {"fire": "Fire reported by a rider", "gas_leak": "Gas leak reported by a rider",
                 "water_leak": "Water leak reported by a rider", "road": "Road hazard reported by a rider",
                 "other": "Hazard reported by a rider"}


def _origin(issue: Issue) -> Origin | None:
    if issue.origin_service and issue.origin_kind and issue.origin_id:
        return Origin(service=issue.origin_service, kind=issue.origin_kind, id=issue.origin_id)
    return None


def _fact(issue: Issue, actor: str | None) -> dict[str, Any]:
    return {"issue_id": issue.id, "category": issue.category, "channel": issue.channel, "urgent": issue.urgent,
            "community": issue.community, "compound": issue.compound, "origin": _origin(issue),
            "occurred_at": issue.updated_at, "actor": actor}


def _record(uow: UnitOfWork, issue: Issue, action: str, actor: str | None, note: str | None = None) -> None:
    uow.session.add(TimelineEntry(issue_id=issue.id, action=action, actor=actor, note=note))


# --- intake -------------------------------------------------------------------------------------------------

async def intake_hazard_report(uow: UnitOfWork, report: HazardReported) -> Issue | None:
    """A rider's hazard report becomes an issue (urgent for fire, gas and water leaks). Idempotent on the
    report: a second delivery finds the issue already there."""
    found = await uow.session.execute(select(Issue.id).where(
        Issue.origin_service == "points", Issue.origin_kind == "hazard_report",
        Issue.origin_id == str(report.report_id)))
    if found.first() is not None:
        return None
    issue = Issue(
        title=HAZARD_TITLES[report.category], description=report.description, category=report.category,
        latitude=report.latitude, longitude=report.longitude, address=report.address,
        community=report.community, compound=report.compound, channel=Channel.rider, urgent=report.urgent,
        photo_urls=report.photo_urls, reporter=f"rider:{report.rider_id}", origin_service="points",
        origin_kind="hazard_report", origin_id=str(report.report_id),
    )
    return _created(uow, issue, actor=issue.reporter)


async def report_issue(uow: UnitOfWork, who: Principal, data: IssueCreate, channel: Channel) -> Issue:
    issue = Issue(**data.model_dump(), channel=channel, reporter=who.sub)
    return _created(uow, issue, actor=who.sub)


def _created(uow: UnitOfWork, issue: Issue, actor: str | None) -> Issue:
    uow.session.add(issue)
    _record(uow, issue, "submitted", actor)
    uow.emit(IssueCreated(title=issue.title, **_fact(issue, actor)))
    return issue


# --- reading ------------------------------------------------------------------------------------------------

def can_see(who: Principal, issue: Issue) -> bool:
    if who.has(Role.staff) or who.is_admin:
        return who.covers(issue.community, issue.compound)
    return issue.reporter == who.sub or issue.is_public


async def get_issue(uow: UnitOfWork, who: Principal, issue_id: UUID, *, for_update: bool = False) -> Issue:
    issue = await uow.session.get(Issue, issue_id, with_for_update=for_update and uow.db.is_postgres)
    if issue is None or not can_see(who, issue):
        raise not_found("issue", issue_id)
    return issue


async def timeline(uow: UnitOfWork, issue_id: UUID) -> list[TimelineEntry]:
    rows = await uow.session.execute(
        select(TimelineEntry).where(TimelineEntry.issue_id == issue_id).order_by(col(TimelineEntry.at))
    )
    return list(rows.scalars())


async def list_issues(uow: UnitOfWork, who: Principal, *, limit: int, cursor: str | None,
                      status: IssueStatus | None = None, community: str | None = None,
                      mine: bool = False) -> Page[Issue]:
    query = select(Issue)
    if who.has(Role.staff) and not who.is_admin and not mine:
        communities, compounds = who.scoped_values("community"), who.scoped_values("compound")
        query = query.where(sa.or_(col(Issue.community).in_(communities), col(Issue.compound).in_(compounds)))
    elif not who.is_admin or mine:
        query = query.where(Issue.reporter == who.sub) if mine else query.where(
            sa.or_(col(Issue.reporter) == who.sub, col(Issue.is_public).is_(True)))
    if status is not None:
        query = query.where(Issue.status == status)
    if community is not None:
        query = query.where(Issue.community == community)
    if cursor:
        created, ident = decode_cursor(cursor, datetime, UUID)
        query = query.where(sa.tuple_(Issue.created_at, Issue.id) < sa.tuple_(created, ident))
    query = query.order_by(col(Issue.created_at).desc(), col(Issue.id).desc()).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda i: encode_cursor(i.created_at, i.id))


# --- staff workflow -----------------------------------------------------------------------------------------

def _transition(issue: Issue, allowed_from: set[IssueStatus], to: IssueStatus) -> None:
    if issue.status not in allowed_from:
        raise conflict("invalid_transition", f"An issue that is {issue.status} cannot become {to}.",
                       status=issue.status, allowed_from=sorted(allowed_from))
    issue.status = to
    issue.updated_at = utcnow()


async def verify(uow: UnitOfWork, who: Principal, issue: Issue, note: str | None) -> Issue:
    _transition(issue, {IssueStatus.submitted, IssueStatus.accepted}, IssueStatus.verified)
    issue.verified_at = issue.updated_at
    _record(uow, issue, "verified", who.sub, note)
    uow.emit(IssueVerified(note=note, **_fact(issue, who.sub)))
    return issue


async def resolve(uow: UnitOfWork, who: Principal, issue: Issue, note: str | None) -> Issue:
    _transition(issue, {IssueStatus.submitted, IssueStatus.accepted, IssueStatus.verified},
                IssueStatus.resolved)
    issue.resolved_at = issue.updated_at
    _record(uow, issue, "resolved", who.sub, note)
    uow.emit(IssueResolved(note=note, **_fact(issue, who.sub)))
    return issue


async def reject(uow: UnitOfWork, who: Principal, issue: Issue, body: Rejection) -> Issue:
    _transition(issue, {IssueStatus.submitted, IssueStatus.accepted, IssueStatus.verified},
                IssueStatus.rejected)
    _record(uow, issue, "rejected", who.sub, body.reason)
    uow.emit(IssueRejected(reason=body.reason, false_report=body.false_report, **_fact(issue, who.sub)))
    return issue
