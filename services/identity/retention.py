"""Retention: dead refresh tokens (a day past expiry), sign-in records older than the retention period (PIPL)
and stale lockout rows are deleted. Idempotent, safe in every replica; takes a unit of work, never commits."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from minsheng.platform.uow import UnitOfWork
from services.identity import config
from services.identity.models import AUTH_EVENTS, REFRESH_TOKENS, THROTTLES


async def purge_expired(uow: UnitOfWork, now: datetime) -> dict[str, int]:
    """Delete what is past its time; how many rows of each table went."""
    c = config.get()
    refresh, events, throttles = REFRESH_TOKENS, AUTH_EVENTS, THROTTLES
    counts: dict[str, int] = {}
    for name, stmt in (
        ("refresh_tokens", sa.delete(refresh).where(refresh.c.expires_at < now - timedelta(days=1))),
        ("auth_events", sa.delete(events).where(events.c.at < now - timedelta(days=c.auth_event_retention_days))),
        ("signin_throttles", sa.delete(throttles).where(throttles.c.updated_at < now - timedelta(days=1))),
    ):
        counts[name] = int((await uow.session.execute(stmt)).rowcount or 0)  # type: ignore[attr-defined]
    return counts
