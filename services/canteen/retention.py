"""PIPL retention: diners who left keep their personal data only for a while.

A diner is *gone* when suspended by a moved/deceased ``ResidentStatusChanged`` (``suspended``/``deceased``) or
otherwise inactive (``withdrawn``). Once gone for longer than ``MINSHENG_CANTEEN_PII_RETENTION_DAYS`` (counted
from ``subsidy_suspended_from``, else the status change, else the last update) and with no order that is not
cancelled on or after the cut-off (a suspended diner may still eat, at full price), the sensitive fields are
cleared: phone, encrypted ID number, its keyed lookup hash and masked form, encrypted health notes. Each purge
writes a row to the diner's ``pii_access_log`` (subject ``system:pii-retention``). Orders, subsidy lines and
settlement figures stay.

Idempotent (only rows with something left to clear are picked) and safe in several replicas (PostgreSQL:
``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.personal_data import RetentionCutoff, purge_personal_data
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.config import now, today
from services.canteen.models import Diner, DinerStatus, Order, OrderStatus, PiiAccess

ACTOR = "system:pii-retention"
BATCH = 500
GONE = (DinerStatus.suspended.value, DinerStatus.deceased.value, DinerStatus.withdrawn.value)


async def purge_expired(
    uow: UnitOfWork, *, retention_days: int | None = None, day: date | None = None, limit: int = BATCH
) -> int:
    """Clear the personal data of up to ``limit`` diners gone longer than the retention period; returns how
    many were purged. The caller commits."""
    keep = config.get().pii_retention_days if retention_days is None else retention_days
    cutoff = RetentionCutoff.keeping(keep, today=day or today(), now=now())
    since_set = col(Diner.subsidy_suspended_from).is_not(None)
    changed_at = col(Diner.status_changed_at)
    expired = sa.or_(
        sa.and_(since_set, col(Diner.subsidy_suspended_from) < cutoff.day),
        sa.and_(~since_set, changed_at.is_not(None), changed_at < cutoff.at),
        sa.and_(~since_set, changed_at.is_(None), col(Diner.updated_at) < cutoff.at),
    )
    still_eating = sa.exists().where(
        col(Order.diner_id) == col(Diner.id),
        col(Order.meal_date) >= cutoff.day,
        col(Order.status) != OrderStatus.cancelled.value,
    )

    def logged(diner: Diner, fields: list[str], at: datetime) -> PiiAccess:
        purpose = f"retention purge: {diner.status}, kept {keep} days; data cleared"
        return PiiAccess(diner_id=diner.id, subject=ACTOR, fields=fields, at=at, purpose=purpose)

    gone = [col(Diner.status).in_(GONE), expired, ~still_eating]
    return await purge_personal_data(uow, Diner, gone, limit=limit, audit=logged)
