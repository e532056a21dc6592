"""Periodic jobs: overdue detection with escalation, and auto-confirmation of resolved issues
(``services/issues/deadlines.py``), and the votes' announcements.

Every replica runs them. Each deadline pass claims its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(replicas take disjoint batches) and only touches rows whose flag is still unset, so a row is flagged — and its
event emitted — exactly once, even when two replicas race.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime, in_transaction
from minsheng.platform.uow import UnitOfWork
from services.issues import config, deadlines, votes
from services.issues.photos import MOVE_JOB


async def _until_done(runtime: ServiceRuntime, step: Callable[[UnitOfWork], Awaitable[deadlines.Pass]]) -> int:
    """Run ``step`` in a transaction of its own again while it claims a whole batch; how many it changed."""
    total = 0
    while True:
        done = await in_transaction(runtime, step)
        total += done.changed
        if not done.full:
            return total


async def sweep_overdue(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Flag issues past their first-response or resolution deadline, escalate them to the sub-district
    listing, and emit IssueOverdue once per missed deadline. Returns how many deadlines were flagged."""
    at, batch = now or utcnow(), config.get().sweep_batch
    return await _until_done(runtime, lambda uow: deadlines.flag_overdue(uow, at, batch))


async def auto_confirm(runtime: ServiceRuntime, now: datetime | None = None) -> int:
    """Resolved issues the reporter neither confirmed nor reopened within N days are confirmed."""
    at, cfg = now or utcnow(), config.get()
    return await _until_done(
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
