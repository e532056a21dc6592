"""The outbox relay: publishes rows written by units of work, in order, and marks them sent.

Rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL, so several replicas share the work without
sending a row twice; a row is marked sent only after the broker acknowledged it, so rows left behind by a
crash (or a broker outage) are simply the next ones sent.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from minsheng.platform.bus.base import EventBus, OutgoingMessage
from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow

log = logging.getLogger(__name__)


@dataclass
class OutboxStatus:
    pending: int
    sent: int
    oldest_pending_at: datetime | None
    max_attempts: int
    last_error: str | None

    @property
    def oldest_pending_age_seconds(self) -> float:
        return (utcnow() - self.oldest_pending_at).total_seconds() if self.oldest_pending_at else 0.0


class OutboxRelay:
    def __init__(
        self, db: Database, bus: EventBus, *, batch_size: int = 200, poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.published = 0
        self.failures = 0

    async def run(self) -> None:
        backoff = 0.1
        while True:
            self.db.outbox_signal.clear()
            try:
                sent = await self.publish_pending()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.warning("outbox relay: publish failed (%s); retrying in %.1fs", exc, backoff)
                await self._record_failure(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            if sent == self.batch_size:
                continue  # more waiting: no pause
            with suppress(TimeoutError):
                await asyncio.wait_for(self.db.outbox_signal.wait(), timeout=self.poll_seconds)

    async def publish_pending(self) -> int:
        t = self.db.tables.outbox
        query = (
            sa.select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.headers)
            .where(t.c.sent_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch_size)
        )
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0
            await self.bus.publish([
                OutgoingMessage(
                    topic=r.topic, key=r.key, value=r.payload.encode(),
                    headers=[(k, str(v).encode()) for k, v in r.headers.items()],
                )
                for r in rows
            ])
            await conn.execute(sa.update(t).where(t.c.id.in_([r.id for r in rows])).values(sent_at=utcnow()))
        self.published += len(rows)
        return len(rows)

    async def _record_failure(self, exc: Exception) -> None:
        t = self.db.tables.outbox
        try:
            async with self.db.engine.begin() as conn:
                first = (await conn.execute(
                    sa.select(t.c.id).where(t.c.sent_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
                )).scalars().all()
                if first:
                    await conn.execute(
                        sa.update(t).where(t.c.id.in_(first))
                        .values(attempts=t.c.attempts + 1, last_error=str(exc)[:1000])
                    )
        except Exception:  # the database may be what is down; the next loop retries anyway
            log.debug("could not record outbox failure", exc_info=True)


async def outbox_status(db: Database) -> OutboxStatus:
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        row = (await conn.execute(
            sa.select(
                sa.func.count().filter(t.c.sent_at.is_(None)),
                sa.func.count().filter(t.c.sent_at.is_not(None)),
                sa.func.min(t.c.created_at).filter(t.c.sent_at.is_(None)),
                sa.func.coalesce(sa.func.max(t.c.attempts).filter(t.c.sent_at.is_(None)), 0),
            )
        )).one()
        last_error = (await conn.execute(
            sa.select(t.c.last_error).where(t.c.sent_at.is_(None), t.c.last_error.is_not(None))
            .order_by(t.c.id.desc()).limit(1)
        )).scalar()
    oldest = row[2]
    if isinstance(oldest, str):  # SQLite aggregate loses the column type
        oldest = datetime.fromisoformat(oldest)
    return OutboxStatus(row[0], row[1], as_utc(oldest) if oldest else None, row[3], last_error)
