"""Periodic work: retention of delivered messages. Safe in several replicas (plain conditional deletes)."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime
from services.notify import config
from services.notify.models import CareContact, Delivery, DeliveryStatus, Message

log = logging.getLogger(__name__)

D = Delivery.__table__  # type: ignore[attr-defined]
M = Message.__table__  # type: ignore[attr-defined]
C = CareContact.__table__  # type: ignore[attr-defined]
_OPEN = [DeliveryStatus.pending.value, DeliveryStatus.held.value, DeliveryStatus.sending.value]


async def purge_old(runtime: ServiceRuntime, *, batch: int = 1000) -> int:
    """Messages older than the retention whose deliveries are all finished go, with their deliveries.
    Failed and dead deliveries are finished too: after the retention nobody will resend them."""
    cutoff = utcnow() - timedelta(days=config.get().retention_days)
    purged = 0
    while True:
        async with runtime.uow() as uow:
            open_ = sa.select(D.c.message_id).where(D.c.status.in_(_OPEN))
            ids = [i for (i,) in await uow.session.execute(
                sa.select(M.c.id).where(M.c.created_at < cutoff, M.c.id.notin_(open_)).limit(batch))]
            if ids:
                await uow.session.execute(sa.delete(D).where(D.c.message_id.in_(ids)))
                await uow.session.execute(sa.delete(M).where(M.c.id.in_(ids)))
            await uow.session.execute(sa.delete(C).where(C.c.created_at < cutoff))
            await uow.commit()
        purged += len(ids)
        if len(ids) < batch:
            break
    if purged:
        log.info("notify: %d messages past retention deleted", purged)
    return purged


JOBS = (Job("purge-delivered-messages", 3600, purge_old),)
