"""The issue tables' handles and who may do what with an issue: staff who manage it or work on it,
the reporters and followers, and what each may see; who sees and votes in a vote.

Named predicates; the use cases answer a "no" through ``minsheng.platform.access`` (``visible_or_404``,
``ensure(works_on(who, issue), not_allowed(detail))``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from minsheng.platform.access import is_staff
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import Message
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.issues.models import (
    Issue,
    IssuePublic,
    IssueReporter,
    IssueStatus,
    TimelineEntry,
    Vote,
    VoteCreate,
)

# An issue, or a row of its columns (the list reads plain rows: no ORM objects to build for a page of 50).
IssueLike = Issue | sa.Row[Any]
ISSUES: sa.Table = table_of(Issue)
TIMELINE: sa.Table = table_of(TimelineEntry)
PUBLIC_COLUMNS = [c for c in IssuePublic.model_fields if c in Issue.model_fields]
# What a list reads: the columns IssuePublic shows, and the flags `is_overdue` looks at.
LIST_COLUMNS = [ISSUES.c[name] for name in (*PUBLIC_COLUMNS, "first_response_overdue_at", "resolution_overdue_at")]


# --- who may do what ----------------------------------------------------------------------------------------


def not_allowed(detail: Message) -> Problem:
    """The 403 for a step on an issue the caller sees but does not handle."""
    return Problem(403, "not_allowed", "Not allowed on this issue", detail)


def role_of(who: Principal) -> str:
    for role in (Role.admin, Role.staff, Role.grid_worker, Role.rider, Role.resident):
        if role in who.roles:
            return role.value
    return "user"


def manages(who: Principal, issue: IssueLike) -> bool:
    """Community/compound staff (or admins) manage the issues in their scope."""
    return is_staff(who) and who.covers(issue.community, issue.compound)


def reports_within_reach(who: Principal, community: str | None, compound: str | None) -> bool:
    """Staff report for the communities and compounds they cover; anyone else reports about any place."""
    return not is_staff(who) or who.covers(community, compound)


def works_on(who: Principal, issue: IssueLike) -> bool:
    """Managers, and the departments the issue is assigned to."""
    if manages(who, issue):
        return True
    return is_staff(who) and bool(who.scoped_values("department").intersection(issue.departments))


REPORTERS = table_of(IssueReporter).c
_IS_PARTICIPANT = (
    sa.select(REPORTERS.id)
    .where(REPORTERS.issue_id == sa.bindparam("issue_id"), REPORTERS.subject == sa.bindparam("subject"))
    .limit(1)
)
_IS_REPORTER = _IS_PARTICIPANT.where(REPORTERS.role == "reporter")


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


def sees_vote(who: Principal, vote: Vote) -> bool:
    """Staff and residents of the vote's community or compound (admin: all)."""
    if who.is_admin:
        return True
    return vote.community in who.scoped_values("community") or (
        vote.compound is not None and vote.compound in who.scoped_values("compound")
    )


def manages_vote(who: Principal, vote: Vote | VoteCreate) -> bool:
    """Staff of the vote's compound or community open and close it early."""
    return who.covers(vote.community, vote.compound)


def may_vote(who: Principal, vote: Vote) -> bool:
    """Residents of the vote's compound (or community, for a community-wide vote)."""
    if not who.has(Role.resident):
        return False
    if vote.compound is not None:
        return vote.compound in who.scoped_values("compound")
    return vote.community in who.scoped_values("community")
