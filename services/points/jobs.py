"""Periodic work of the points service. Every job is safe in several replicas: expiry entries are idempotent
on their cause (rider + local day), task expiry and purges are conditional statements."""

from __future__ import annotations

import logging

from minsheng.platform.service import Job, ServiceRuntime, in_transaction, while_full
from services.points import expiry, merchants, tasks

log = logging.getLogger(__name__)


async def expire_points(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    expired = await while_full(runtime, lambda uow: expiry.expire_points(uow, batch=batch), max_batches=max_batches)
    if expired:
        log.info("points: %d points expired", expired)
    return expired


async def warn_expiring(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    told = await while_full(runtime, lambda uow: expiry.warn_expiring(uow, batch=batch), max_batches=max_batches)
    if told:
        log.info("points: %d riders told their points expire soon", told)
    return told


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
