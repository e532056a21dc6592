"""Keeping the platform tables small: sent outbox rows, old inbox rows and expired idempotency keys go.

Inbox rows must outlive any redelivery (broker retention, a consumer group rewound for a replay), so they are
kept longer than the outbox; dead letters are kept until an operator replays or deletes them.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from minsheng.platform.db import Database
from minsheng.platform.ids import utcnow


async def purge_platform_tables(
    db: Database, *, outbox_hours: float, inbox_days: float, idempotency_hours: float
) -> dict[str, int]:
    t = db.tables
    now = utcnow()
    async with db.engine.begin() as conn:
        sent = await conn.execute(
            sa.delete(t.outbox).where(
                t.outbox.c.sent_at.is_not(None), t.outbox.c.sent_at < now - timedelta(hours=outbox_hours)
            )
        )
        inbox = await conn.execute(
            sa.delete(t.processed_events).where(t.processed_events.c.processed_at < now - timedelta(days=inbox_days))
        )
        keys = await conn.execute(
            sa.delete(t.idempotency_keys).where(
                t.idempotency_keys.c.created_at < now - timedelta(hours=idempotency_hours)
            )
        )
    return {"outbox": sent.rowcount, "processed_events": inbox.rowcount, "idempotency_keys": keys.rowcount}
