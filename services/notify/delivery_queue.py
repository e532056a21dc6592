"""The deliveries table as the sender's work queue: which channels have something due, claiming due rows
under a lease, holding the rows of a channel without credentials, what the queue looks like (for the
metrics), and making failed rows due again (the operators' ``resend``).

A claim is ``UPDATE deliveries SET status='sending', lease_until=…, attempts=attempts+1 WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED)`` on PostgreSQL, so replicas share the work and never take the same row; a row whose
sender died is due again once its lease has run out. Non-urgent rows are not due during quiet hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.sql import table_of
from services.notify import config
from services.notify.models import SENT_CHANNELS, Delivery, DeliveryStatus

D = table_of(Delivery)
# What a claim returns of each row: all that sending it and recording its outcome need.
_CLAIMED = (
    D.c.id,
    D.c.message_id,
    D.c.channel,
    D.c.address_enc,
    D.c.request,
    D.c.attempts,
    D.c.urgent,
    D.c.created_at,
    D.c.recipient_key,
)


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(D.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.held.value]), D.c.next_attempt_at <= now),
        sa.and_(D.c.status == DeliveryStatus.sending.value, D.c.lease_until < now),
    )


async def due_channels(db: Database) -> list[str]:
    """The channels with something to send now: one read, so an idle or one-channel round takes no write
    lock for the others (SQLite has one writer at a time)."""
    now = utcnow()
    query = sa.select(D.c.channel).where(D.c.channel.in_([c.value for c in SENT_CHANNELS]), _due(now))
    if config.get().in_quiet_hours():
        query = query.where(D.c.urgent.is_(True))
    async with db.read_sessionmaker() as session:
        return sorted({c for (c,) in await session.execute(query.distinct())})


async def claim(db: Database, channel: str, limit: int, lease: datetime) -> Sequence[sa.Row[Any]]:
    """Up to ``limit`` due deliveries of ``channel``, urgent first, marked ``sending`` until ``lease`` (an
    attempt counted); committed at once, so other replicas skip them."""
    now = utcnow()
    pick = sa.select(D.c.id).where(D.c.channel == channel, _due(now))
    if config.get().in_quiet_hours():
        pick = pick.where(D.c.urgent.is_(True))
    pick = pick.order_by(D.c.urgent.desc(), D.c.next_attempt_at).limit(limit)
    if db.is_postgres:
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        sa.update(D)
        .where(D.c.id.in_(pick.scalar_subquery()))
        .values(status=DeliveryStatus.sending.value, lease_until=lease, attempts=D.c.attempts + 1, updated_at=now)
        .returning(*_CLAIMED)
    )
    async with db.sessionmaker() as session:
        rows = (await session.execute(stmt)).all()
        await session.commit()
    return rows


async def hold_unconfigured(db: Database, channel: str) -> None:
    """Hold the due rows of a channel this process has no credentials for (looked at again in a minute)."""
    now = utcnow()
    async with db.sessionmaker() as session:
        await session.execute(
            sa.update(D)
            .where(D.c.channel == channel, D.c.status == DeliveryStatus.pending.value, D.c.next_attempt_at <= now)
            .values(
                status=DeliveryStatus.held.value,
                error_class="unconfigured",
                last_error="channel_not_configured",
                next_attempt_at=now + timedelta(seconds=60),
            )
        )
        await session.commit()


async def queue_state(db: Database) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
    """The rows not yet sent by (channel, status), and how long the oldest due row of each channel has waited
    (seconds)."""
    now = utcnow()
    async with db.sessionmaker() as session:
        counts = await session.execute(
            sa.select(D.c.channel, D.c.status, sa.func.count())
            .where(D.c.status.notin_([DeliveryStatus.sent.value]))
            .group_by(D.c.channel, D.c.status)
        )
        queue = {(c, st): n for c, st, n in counts}
        oldest = await session.execute(
            sa.select(D.c.channel, sa.func.min(D.c.next_attempt_at))
            .where(
                D.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.held.value]),
                D.c.next_attempt_at <= now,
            )
            .group_by(D.c.channel)
        )
        oldest_due_age = {c: (now - as_utc(t)).total_seconds() for c, t in oldest if t is not None}
    return queue, oldest_due_age


async def resend(db: Database, ids: Sequence[UUID] | None = None) -> int:
    """Make failed and dead deliveries due again (all of them, or the given ones). The CLI's ``resend``."""
    now = utcnow()
    query = sa.update(D).where(D.c.status.in_([DeliveryStatus.failed.value, DeliveryStatus.dead.value]))
    if ids:
        query = query.where(D.c.id.in_(list(ids)))
    async with db.sessionmaker() as session:
        result = await session.execute(
            query.values(
                status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now, error_class=None, updated_at=now
            )
        )
        await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
