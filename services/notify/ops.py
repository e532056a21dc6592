"""Operator commands (``minsheng notify …``): list deliveries (masked, no bodies), re-send dead ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.platform.db import Database
from minsheng.platform.sql import table_of
from services.notify.delivery_queue import resend
from services.notify.models import Delivery, DeliveryStatus

D = table_of(Delivery)


async def list_deliveries(
    db: Database,
    *,
    status: Sequence[str] = (DeliveryStatus.failed.value, DeliveryStatus.dead.value),
    channel: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    query = sa.select(
        D.c.id,
        D.c.channel,
        D.c.status,
        D.c.recipient_key,
        D.c.address_masked,
        D.c.attempts,
        D.c.error_class,
        D.c.last_error,
        D.c.created_at,
        D.c.updated_at,
    ).order_by(D.c.id.desc())
    if status:
        query = query.where(D.c.status.in_(list(status)))
    if channel:
        query = query.where(D.c.channel == channel)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query.limit(limit))).all()
    return [
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, UUID) else v)
            for k, v in row._mapping.items()
        }
        for row in rows
    ]


def render(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)


async def resend_deliveries(db: Database, ids: Sequence[str] | None) -> int:
    return await resend(db, [UUID(i) for i in ids] if ids else None)
