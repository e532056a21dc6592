"""Periodic jobs: overdue detection with escalation, and auto-confirmation of resolved issues.

Every replica runs them. Each claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (replicas take
disjoint batches) and only touches rows whose flag is still unset, so a row is flagged — and its event
emitted — exactly once, even when two replicas race.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.issues import IssueConfirmed, IssueOverdue
from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime, in_transaction
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.issues import config, votes
from services.issues.models import Issue, IssueStatus
from services.issues.photos import MOVE_JOB
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


async def sweep_overdue(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Flag issues past their first-response or resolution deadline, escalate them to the sub-district
    listing, and emit IssueOverdue once per missed deadline. Returns how many deadlines were flagged."""
    now = now or utcnow()
    batch = config.get().sweep_batch
    flagged = 0
    t = table_of(Issue)
    while True:
        async with runtime.uow() as uow:
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
            await uow.commit()
        flagged += n_first + n_fix
        if late_first < batch and late_fix < batch:
            return flagged


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


async def auto_confirm(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Resolved issues the reporter neither confirmed nor reopened within N days are confirmed."""
    now = now or utcnow()
    cfg = config.get()
    cutoff = now - timedelta(days=cfg.auto_confirm_days)
    t = table_of(Issue)
    done = 0
    while True:
        n = 0
        async with runtime.uow() as uow:
            due = await _claim(
                uow,
                sa.select(t.c.id)
                .where(
                    t.c.status == IssueStatus.resolved.value,
                    t.c.resolved_at < cutoff,
                )
                .order_by(t.c.resolved_at),
                cfg.sweep_batch,
            )
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
                    f"Confirmed automatically after {cfg.auto_confirm_days:g} days without an answer",
                    data={"auto": True},
                    at=now,
                )
                uow.emit(IssueConfirmed(auto=True, rating=None, **fact(issue, None)))
                n += 1
            await uow.commit()
        done += n
        if len(due) < cfg.sweep_batch:
            return done


async def announce_due(runtime: ServiceRuntime, *, batch: int = 200) -> int:
    """Votes that have opened or closed since the last run are announced (once: see ``votes.announce_due``)."""
    return await in_transaction(runtime, lambda uow: votes.announce_due(uow, utcnow(), batch=batch))


JOBS = (
    Job("issues-overdue-sweep", config.get().sweep_every_seconds, sweep_overdue),
    Job("issues-auto-confirm", 15 * 60, auto_confirm),
    Job("issues-vote-announcements", 60, announce_due),
    MOVE_JOB,
)
