"""What happened to an issue: the facts every event carries, the timeline entry and the event recorded in
the same unit of work, and the clock fields a step moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minsheng.contracts.base import Origin
from minsheng.platform.auth import Principal
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.issues.access import IssueLike, role_of
from services.issues.models import (
    Issue,
    IssueStatus,
    TimelineEntry,
)

# --- event facts and the timeline ---------------------------------------------------------------------------


def origin_of(issue: IssueLike) -> Origin | None:
    if issue.origin_service and issue.origin_kind and issue.origin_id:
        return Origin(service=issue.origin_service, kind=issue.origin_kind, id=issue.origin_id)
    return None


def fact(issue: IssueLike, actor: str | None) -> dict[str, Any]:
    return {
        "issue_id": issue.id,
        "category": issue.category,
        "channel": issue.channel,
        "urgent": issue.urgent,
        "community": issue.community,
        "compound": issue.compound,
        "origin": origin_of(issue),
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


def touch(issue: Issue, now: datetime | None = None) -> datetime:
    issue.updated_at = now or utcnow()
    return issue.updated_at


def responded(issue: Issue, now: datetime) -> None:
    if issue.first_responded_at is None:
        issue.first_responded_at = now


def close(issue: Issue, status: IssueStatus, now: datetime) -> None:
    issue.status = status
    issue.closed_at = now
