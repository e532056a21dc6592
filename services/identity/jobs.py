"""Periodic work: reload the key store (a rotation by another replica or the CLI), drop dead refresh tokens,
old sign-in records (PIPL retention) and stale lockout rows. Each is idempotent, safe in every replica."""

from __future__ import annotations

from minsheng.platform.ids import utcnow
from minsheng.platform.service import Job, ServiceRuntime, in_transaction
from services.identity import config, retention
from services.identity.keys import load_into


async def reload_keys(runtime: ServiceRuntime) -> None:
    await load_into(runtime)


async def purge(runtime: ServiceRuntime) -> dict[str, int]:
    now = utcnow()
    return await in_transaction(runtime, lambda uow: retention.purge_expired(uow, now))


JOBS = (
    # Every process serving the API signs with the ring it holds: each one reloads it (a rotation reaches all).
    Job("reload-keys", config.get().key_reload_seconds, reload_keys, every_process=True),
    Job("purge", 3600, purge),
)
