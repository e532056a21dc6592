"""Periodic work: reload the key store (a rotation by another replica or the CLI), drop dead refresh tokens,
old sign-in records (PIPL retention) and stale lockout rows. Each is idempotent, safe in every replica."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime
from services.identity import config
from services.identity.keys import load_into
from services.identity.models import AUTH_EVENTS, REFRESH_TOKENS, THROTTLES


async def reload_keys(runtime: ServiceRuntime) -> None:
    await load_into(runtime)


async def purge(runtime: ServiceRuntime) -> dict[str, int]:
    now = utcnow()
    c = config.get()
    refresh, events, throttles = REFRESH_TOKENS, AUTH_EVENTS, THROTTLES
    counts: dict[str, int] = {}
    async with runtime.uow() as uow:
        for name, stmt in (
            ("refresh_tokens", sa.delete(refresh).where(refresh.c.expires_at < now - timedelta(days=1))),
            ("auth_events", sa.delete(events).where(events.c.at < now - timedelta(days=c.auth_event_retention_days))),
            ("signin_throttles", sa.delete(throttles).where(throttles.c.updated_at < now - timedelta(days=1))),
        ):
            counts[name] = int((await uow.session.execute(stmt)).rowcount or 0)  # type: ignore[attr-defined]
        await uow.commit()
    return counts


JOBS = (
    # Every process serving the API signs with the ring it holds: each one reloads it (a rotation reaches all).
    Job("reload-keys", config.get().key_reload_seconds, reload_keys, every_process=True),
    Job("purge", 3600, purge),
)
