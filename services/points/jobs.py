"""Periodic work of the points service. Every job is safe in several replicas: expiry entries are idempotent
on their cause (rider + local day), task expiry and purges are conditional statements."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from typing import Protocol

from minsheng.platform.service import Job, ServiceRuntime, in_transaction
from minsheng.platform.uow import UnitOfWork
from services.points import expiry, merchants, tasks

log = logging.getLogger(__name__)


class _BatchStep(Protocol):
    """One batch of riders: (what it did, riders looked at)."""

    def __call__(self, uow: UnitOfWork, *, batch: int) -> Awaitable[tuple[int, int]]: ...


async def expire_points(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    expired = await _in_batches(runtime, expiry.expire_points, batch, max_batches)
    if expired:
        log.info("points: %d points expired", expired)
    return expired


async def warn_expiring(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    told = await _in_batches(runtime, expiry.warn_expiring, batch, max_batches)
    if told:
        log.info("points: %d riders told their points expire soon", told)
    return told


async def _in_batches(runtime: ServiceRuntime, step: _BatchStep, batch: int, max_batches: int) -> int:
    """Run ``step`` over batches of riders, one transaction each (short locks, steady progress), until it looks
    at fewer than a batch; the sum of what it did."""
    done = 0
    for _ in range(max_batches):
        did, looked_at = await in_transaction(runtime, functools.partial(step, batch=batch))
        done += did
        if looked_at < batch:
            break
    return done


async def expire_tasks(runtime: ServiceRuntime) -> int:
    return await in_transaction(runtime, tasks.expire_overdue)


async def purge(runtime: ServiceRuntime) -> tuple[int, int]:
    return await in_transaction(runtime, merchants.purge_expired)


JOBS = (
    Job("expire-points", 3600, expire_points),
    Job("warn-expiring-points", 3600, warn_expiring),
    Job("expire-tasks", 60, expire_tasks),
    Job("purge-nonces-and-codes", 600, purge),
)
