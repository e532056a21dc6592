"""Periodic jobs. Every replica runs them; each is idempotent (unique spells, conditional updates)."""

from __future__ import annotations

from minsheng.platform.privacy import field_cipher
from minsheng.platform.service import Job, ServiceRuntime, in_batches, in_transaction
from services.canteen import care, config, counter, retention
from services.canteen.models import ScanResult


async def scan_absences(runtime: ServiceRuntime) -> ScanResult:
    cipher = field_cipher(runtime.settings)
    return await in_transaction(runtime, lambda uow: care.scan_absences(uow, cipher))


async def sweep_no_shows(runtime: ServiceRuntime) -> int:
    return await in_transaction(runtime, lambda uow: counter.sweep_no_shows(uow, config.today()))


async def pii_retention(runtime: ServiceRuntime) -> int:
    """Diners gone longer than the retention period lose their personal data (logged in the access log)."""
    return await in_batches(runtime, retention.purge_expired, retention.BATCH)


JOBS = (
    Job("absence-scan", config.get().absence_scan_every_seconds, scan_absences),
    Job("no-show-sweep", config.get().no_show_sweep_every_seconds, sweep_no_shows),
    Job("pii-retention", config.get().pii_retention_every_seconds, pii_retention),
)
