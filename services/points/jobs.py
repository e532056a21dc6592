"""Periodic work of the points service. Every job is safe in several replicas: expiry entries are idempotent
on their cause (rider + local day), task expiry and purges are conditional statements."""

from __future__ import annotations

import logging

from minsheng.platform.service import Job, ServiceRuntime
from services.points import expiry, merchants, tasks

log = logging.getLogger(__name__)


async def expire_points(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    """Expire in batches of riders, one transaction each (short locks, steady progress)."""
    expired = 0
    for _ in range(max_batches):
        async with runtime.uow() as uow:
            points, riders = await expiry.expire_points(uow, batch=batch)
            await uow.commit()
        expired += points
        if riders < batch:
            break
    if expired:
        log.info("points: %d points expired", expired)
    return expired


async def warn_expiring(runtime: ServiceRuntime, *, batch: int = 500, max_batches: int = 100) -> int:
    told = 0
    for _ in range(max_batches):
        async with runtime.uow() as uow:
            n, looked_at = await expiry.warn_expiring(uow, batch=batch)
            await uow.commit()
        told += n
        if looked_at < batch:
            break
    if told:
        log.info("points: %d riders told their points expire soon", told)
    return told


async def expire_tasks(runtime: ServiceRuntime) -> int:
    async with runtime.uow() as uow:
        n = await tasks.expire_overdue(uow)
        await uow.commit()
    return n


async def purge(runtime: ServiceRuntime) -> tuple[int, int]:
    async with runtime.uow() as uow:
        result = await merchants.purge_expired(uow)
        await uow.commit()
    return result


JOBS = (
    Job("expire-points", 3600, expire_points),
    Job("warn-expiring-points", 3600, warn_expiring),
    Job("expire-tasks", 60, expire_tasks),
    Job("purge-nonces-and-codes", 600, purge),
)
