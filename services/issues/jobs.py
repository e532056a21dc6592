"""Periodic jobs: overdue detection with escalation, and auto-confirmation of resolved issues.

Every replica runs them. Each claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (replicas take
disjoint batches) and only touches rows whose flag is still unset, so a row is flagged — and its event
emitted — exactly once, even when two replicas race.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from minsheng.contracts.issues import IssueConfirmed, IssueOverdue
from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime
from minsheng.platform.uow import UnitOfWork
from services.issues.config import get_config
from services.issues.models import Issue, IssueStatus
from services.issues.service import _fact, record


def _claim(uow: UnitOfWork, query: Any, batch: int) -> Any:
    query = query.limit(batch)
    if uow.db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    return query


async def sweep_overdue(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Flag issues past their first-response or resolution deadline, escalate them to the sub-district
    listing, and emit IssueOverdue once per missed deadline. Returns how many deadlines were flagged."""
    now = now or utcnow()
    batch = get_config().sweep_batch
    flagged = 0
    while True:
        async with runtime.uow() as uow:
            late_first = await uow.session.execute(_claim(uow, select(Issue).where(
                col(Issue.first_responded_at).is_(None), col(Issue.first_response_overdue_at).is_(None),
                col(Issue.first_response_due_at) < now, col(Issue.closed_at).is_(None),
            ).order_by(col(Issue.first_response_due_at)), batch))
            n = 0
            for issue in late_first.scalars():
                issue.first_response_overdue_at = now
                issue.escalation_level = max(issue.escalation_level, 1)
                issue.updated_at = now
                record(uow, issue, "overdue", None, "No first response in time; escalated to the sub-district",
                       data={"deadline": "first_response"}, at=now)
                uow.emit(IssueOverdue(deadline="first_response", due_at=issue.first_response_due_at,
                                      escalation_level=issue.escalation_level, **_fact(issue, None)))
                n += 1
            late_fix = await uow.session.execute(_claim(uow, select(Issue).where(
                col(Issue.closed_at).is_(None), col(Issue.resolution_overdue_at).is_(None),
                col(Issue.resolution_due_at) < now,
            ).order_by(col(Issue.resolution_due_at)), batch))
            for issue in late_fix.scalars():
                issue.resolution_overdue_at = now
                issue.escalation_level += 1
                issue.updated_at = now
                record(uow, issue, "overdue", None, "Not resolved in time; escalated to the sub-district",
                       data={"deadline": "resolution", "escalation_level": issue.escalation_level}, at=now)
                uow.emit(IssueOverdue(deadline="resolution", due_at=issue.resolution_due_at,
                                      escalation_level=issue.escalation_level, **_fact(issue, None)))
                n += 1
            await uow.commit()
        flagged += n
        if n < batch:
            return flagged


async def auto_confirm(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Resolved issues the reporter neither confirmed nor reopened within N days are confirmed."""
    now = now or utcnow()
    cfg = get_config()
    cutoff = now - timedelta(days=cfg.auto_confirm_days)
    done = 0
    while True:
        async with runtime.uow() as uow:
            rows = await uow.session.execute(_claim(uow, select(Issue).where(
                Issue.status == IssueStatus.resolved, col(Issue.resolved_at) < cutoff,
            ).order_by(col(Issue.resolved_at)), cfg.sweep_batch))
            n = 0
            for issue in rows.scalars():
                issue.status = IssueStatus.confirmed
                issue.confirmed_at = issue.updated_at = now
                record(uow, issue, "confirmed", None,
                       f"Confirmed automatically after {cfg.auto_confirm_days:g} days without an answer",
                       data={"auto": True}, at=now)
                uow.emit(IssueConfirmed(auto=True, rating=None, **_fact(issue, None)))
                n += 1
            await uow.commit()
        done += n
        if n < cfg.sweep_batch:
            return done


JOBS = (
    Job("issues-overdue-sweep", get_config().sweep_every_seconds, sweep_overdue),
    Job("issues-auto-confirm", 15 * 60, auto_confirm),
)
