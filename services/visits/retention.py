"""PIPL retention: residents who moved away or died keep their personal data only for a while.

Once a resident's status has been ``moved``/``deceased`` for longer than ``MINSHENG_VISITS_PII_RETENTION_DAYS``
the sensitive fields are cleared — phone, encrypted ID number, its keyed lookup hash and masked form, encrypted
health/mobility notes — and a ``purge`` row is written to the resident's ``pii_audit`` trail. The person's
record (name, household, status) and their history (visits, needs, tasks) stay.

Idempotent: only rows with something left to clear are picked, so a second run changes nothing. Safe in several
replicas: on PostgreSQL the rows are claimed with ``FOR UPDATE SKIP LOCKED`` (and the status is checked again
under the lock), so a resident is purged and audited once.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.personal_data import RetentionCutoff, purge_personal_data
from minsheng.platform.uow import UnitOfWork
from services.visits import config
from services.visits.config import now, today
from services.visits.models import PiiAudit, Resident, ResidentStatus

ACTOR = "system:pii-retention"
BATCH = 500


async def purge_expired(
    uow: UnitOfWork, *, retention_days: int | None = None, day: date | None = None, limit: int = BATCH
) -> int:
    """Clear the personal data of up to ``limit`` residents gone longer than the retention period; returns how
    many were purged. The caller commits."""
    keep = config.get().pii_retention_days if retention_days is None else retention_days
    cutoff = RetentionCutoff.keeping(keep, today=day or today(), now=now())
    gone = col(Resident.status).in_([ResidentStatus.moved.value, ResidentStatus.deceased.value])
    effective = col(Resident.status_effective_date)
    expired = sa.or_(
        effective < cutoff.day,
        sa.and_(effective.is_(None), col(Resident.updated_at) < cutoff.at),
    )

    def audited(resident: Resident, fields: list[str], at: datetime) -> PiiAudit:
        since = resident.status_effective_date or resident.updated_at.date()
        return PiiAudit(
            actor=ACTOR,
            actor_roles=[],
            resident_id=resident.id,
            community=resident.community,
            action="purge",
            fields=fields,
            at=at,
            reason=f"retention: {resident.status} since {since}, kept {keep} days; personal data cleared",
        )

    return await purge_personal_data(uow, Resident, [gone, expired], limit=limit, audit=audited)
