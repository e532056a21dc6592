"""Deadlines: flag issues past their first-response or resolution deadline (escalating them to the sub-district
listing, IssueOverdue), and confirm resolved issues the reporter left unanswered (IssueConfirmed ``auto``).

Every replica's jobs run these. Each pass claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(replicas take disjoint batches) and only touches rows whose flag is still unset, so a row is flagged — and its
event emitted — exactly once, even when two replicas race. A pass takes a unit of work and never commits: the
job runs it in a transaction of its own (``services/issues/jobs.py``) and again while a pass found a full batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.issues import IssueConfirmed, IssueOverdue
from minsheng.platform.service import Batch
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.issues.models import Issue, IssueStatus
from services.issues.timeline import fact, record


async def _claim(uow: UnitOfWork, query: Any, batch: int) -> list[UUID]:
    """The ids ``query`` selects, at most ``batch``; on PostgreSQL locked so that another replica skips them."""
    query = query.limit(batch)
    if uow.db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    return list((await uow.session.execute(query)).scalars().all())


async def _flag(uow: UnitOfWork, issue_id: UUID, guard: Any, values: dict[str, Any]) -> Issue | None:
    """Set ``values`` only if ``guard`` still holds: whoever flips the flag first owns the event."""
    table = table_of(Issue)
    done = await uow.session.execute(sa.update(table).where(table.c.id == issue_id, guard).values(**values))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await uow.session.get(Issue, issue_id)


async def flag_overdue(uow: UnitOfWork, now: datetime, batch: int) -> Batch:
    """One pass of the overdue sweep: at most ``batch`` issues past their first-response deadline, then at most
    ``batch`` past their resolution deadline, are flagged, escalated to the sub-district and announced with
    IssueOverdue (once per missed deadline)."""
    t = table_of(Issue)
    greatest = sa.func.greatest if uow.db.is_postgres else sa.func.max
    late_first, n_first = await _flag_missed(
        uow,
        "first_response",
        (t.c.first_responded_at.is_(None), t.c.closed_at.is_(None)),
        greatest(t.c.escalation_level, 1),
        "No first response in time; escalated to the sub-district",
        now,
        batch,
    )
    uow.session.expunge_all()  # the first pass may have raised escalation levels: read them afresh
    late_fix, n_fix = await _flag_missed(
        uow,
        "resolution",
        (t.c.closed_at.is_(None),),
        t.c.escalation_level + 1,
        "Not resolved in time; escalated to the sub-district",
        now,
        batch,
        report_level=True,
    )
    return Batch(done=n_first + n_fix, full=late_first >= batch or late_fix >= batch)


async def _flag_missed(
    uow: UnitOfWork,
    deadline: Literal["first_response", "resolution"],
    still_due: tuple[sa.ColumnElement[bool], ...],
    escalation: sa.ColumnElement[int],
    note: str,
    now: datetime,
    batch: int,
    *,
    report_level: bool = False,
) -> tuple[int, int]:
    """One pass over a deadline (``<deadline>_due_at``): claim a batch of issues past it whose
    ``<deadline>_overdue_at`` is unset and ``still_due`` holds, flag and escalate each, record it on the
    timeline and emit IssueOverdue. How many were claimed and how many flagged (the flushed changes)."""
    t = table_of(Issue)
    due_at, overdue_at = t.c[f"{deadline}_due_at"], t.c[f"{deadline}_overdue_at"]
    claimed = await _claim(
        uow,
        sa.select(t.c.id).where(*still_due, overdue_at.is_(None), due_at < now).order_by(due_at),
        batch,
    )
    flagged = 0
    for issue_id in claimed:
        values = {overdue_at.key: now, "updated_at": now, "escalation_level": escalation}
        issue = await _flag(uow, issue_id, overdue_at.is_(None), values)
        if issue is None:
            continue
        data: dict[str, Any] = {"deadline": deadline}
        if report_level:
            data["escalation_level"] = issue.escalation_level
        record(uow, issue, "overdue", None, note, data=data, at=now)
        uow.emit(
            IssueOverdue(
                deadline=deadline,
                due_at=getattr(issue, due_at.key),
                escalation_level=issue.escalation_level,
                **fact(issue, None),
            )
        )
        flagged += 1
    await uow.session.flush()
    return len(claimed), flagged


async def confirm_unanswered(uow: UnitOfWork, now: datetime, after_days: float, batch: int) -> Batch:
    """One pass of the auto-confirmation: at most ``batch`` issues resolved more than ``after_days`` ago that the
    reporter neither confirmed nor reopened are confirmed (timeline, IssueConfirmed ``auto``)."""
    t = table_of(Issue)
    cutoff = now - timedelta(days=after_days)
    due = await _claim(
        uow,
        sa.select(t.c.id)
        .where(
            t.c.status == IssueStatus.resolved.value,
            t.c.resolved_at < cutoff,
        )
        .order_by(t.c.resolved_at),
        batch,
    )
    confirmed = 0
    for issue_id in due:
        issue = await _flag(
            uow,
            issue_id,
            t.c.status == IssueStatus.resolved.value,
            {"status": IssueStatus.confirmed.value, "confirmed_at": now, "updated_at": now},
        )
        if issue is None:
            continue
        record(
            uow,
            issue,
            "confirmed",
            None,
            f"Confirmed automatically after {after_days:g} days without an answer",
            data={"auto": True},
            at=now,
        )
        uow.emit(IssueConfirmed(auto=True, rating=None, **fact(issue, None)))
        confirmed += 1
    return Batch(done=confirmed, full=len(due) >= batch)
