"""Periodic jobs: overdue detection with escalation, and auto-confirmation of resolved issues
(``services/issues/deadlines.py``), and the votes' announcements.

Every replica runs them. Each deadline pass claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(replicas take disjoint batches) and only touches rows whose flag is still unset, so a row is flagged — and its
event emitted — exactly once, even when two replicas race.
"""

from __future__ import annotations

from datetime import datetime

from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime, in_transaction, while_full
from services.issues import config, deadlines, votes
from services.issues.photos import MOVE_JOB


async def sweep_overdue(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Flag issues past their first-response or resolution deadline, escalate them to the sub-district
    listing, and emit IssueOverdue once per missed deadline. Returns how many deadlines were flagged."""
    at, batch = now or utcnow(), config.get().sweep_batch
    return await while_full(runtime, lambda uow: deadlines.flag_overdue(uow, at, batch))


async def auto_confirm(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Resolved issues the reporter neither confirmed nor reopened within N days are confirmed."""
    at, cfg = now or utcnow(), config.get()
    return await while_full(
        runtime, lambda uow: deadlines.confirm_unanswered(uow, at, cfg.auto_confirm_days, cfg.sweep_batch)
    )


async def announce_due(runtime: ServiceRuntime, *, batch: int = 200) -> int:
    """Votes that have opened or closed since the last run are announced (once: see ``votes.announce_due``)."""
    return await in_transaction(runtime, lambda uow: votes.announce_due(uow, utcnow(), batch=batch))


JOBS = (
    Job("issues-overdue-sweep", config.get().sweep_every_seconds, sweep_overdue),
    Job("issues-auto-confirm", 15 * 60, auto_confirm),
    Job("issues-vote-announcements", 60, announce_due),
    MOVE_JOB,
)
