"""Periodic jobs. All are idempotent and safe in several replicas (row locks with SKIP LOCKED on
PostgreSQL for confirmation; recomputing a household's schedule twice gives the same answer)."""

from __future__ import annotations

import functools
import logging

from minsheng.platform.service import Job, ServiceRuntime, in_batches, in_transaction
from services.visits import config, ledger, retention, schedule

log = logging.getLogger(__name__)
AUTO_CONFIRM_BATCH = 500


async def auto_confirm_needs(runtime: ServiceRuntime) -> int:
    """Resolved needs nobody answered about for a week are confirmed (the ledger notes it)."""
    total = await in_batches(
        runtime, functools.partial(ledger.auto_confirm, limit=AUTO_CONFIRM_BATCH), AUTO_CONFIRM_BATCH
    )
    if total:
        log.info("visits: auto-confirmed %d resolved needs", total)
    return total


async def refresh_tiers(runtime: ServiceRuntime) -> int:
    """Residents who just reached a tier's minimum age (80, say) move their household to that tier."""
    return await in_transaction(runtime, schedule.refresh_coming_of_age)


async def pii_retention(runtime: ServiceRuntime) -> int:
    """Residents gone (moved/deceased) longer than the retention period lose their personal data (audited)."""
    total = await in_batches(runtime, retention.purge_expired, retention.BATCH)
    if total:
        log.info("visits: cleared the personal data of %d residents past retention", total)
    return total


def jobs() -> list[Job]:
    s = config.get()
    return [
        Job("auto-confirm-needs", s.auto_confirm_every_seconds, auto_confirm_needs),
        Job("refresh-tiers", s.tier_refresh_every_seconds, refresh_tiers),
        Job("pii-retention", s.pii_retention_every_seconds, pii_retention),
    ]
