"""Points expire: unspent credits older than the policy allows are debited (idempotent per rider and local day),
and riders are told once a month ahead. Jobs' use cases: take a unit of work, never commit."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from minsheng.contracts.points import PointsExpiring
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.service import Batch
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config
from services.points.ledger import BALANCES, CREDIT_KINDS, ENTRIES, already_posted, lock_balance, post_entry
from services.points.models import EntryKind, ExpiryWarning


def _expirable_columns(cutoff: datetime) -> tuple[Any, Any]:
    amount = ENTRIES.c.amount
    old_credits = sa.func.coalesce(
        sa.func.sum(
            sa.case(
                (sa.and_(ENTRIES.c.kind.in_(CREDIT_KINDS), amount > 0, ENTRIES.c.created_at < cutoff), amount), else_=0
            )
        ),
        0,
    )
    debits = sa.func.coalesce(
        sa.func.sum(sa.case((amount < 0, -amount), (ENTRIES.c.kind == EntryKind.voided.value, -amount), else_=0)), 0
    )
    return old_credits, debits


async def expirable(uow: UnitOfWork, rider_id: UUID, cutoff: datetime) -> int:
    """Points credited before ``cutoff`` and not yet spent, first in first out: credits (earned, positive
    adjustments) before the cutoff minus every debit ever (redeemed, reversed, expired, negative adjustments),
    voided redemptions giving their debit back."""
    old_credits, debits = _expirable_columns(cutoff)
    row = (await uow.session.execute(sa.select(old_credits, debits).where(ENTRIES.c.rider_id == rider_id))).one()
    return max(0, int(row[0]) - int(row[1]))


async def _riders_with_expirable_points(uow: UnitOfWork, cutoff: datetime, batch: int, *where: Any) -> list[UUID]:
    """Up to ``batch`` riders, in id order, with points credited before ``cutoff`` and not yet spent."""
    old_credits, debits = _expirable_columns(cutoff)
    query = (
        sa.select(ENTRIES.c.rider_id)
        .where(*where)
        .group_by(ENTRIES.c.rider_id)
        .having(old_credits - debits > 0)
        .order_by(ENTRIES.c.rider_id)
        .limit(batch)
    )
    return list((await uow.session.execute(query)).scalars().all())


async def expire_points(uow: UnitOfWork, *, now: datetime | None = None, batch: int = 500) -> Batch:
    """Expire unspent points older than the policy allows, for up to ``batch`` riders; returns the points
    expired, and whether it looked at a whole batch of riders (call again while it did). Idempotent per rider
    and local day (the cause is ``expiry / <rider>:<day>``), so several replicas, or two runs a day, change
    nothing. Riders whose old points are all spent are never candidates, so batches always make progress."""
    settings = config.get()
    if not settings.expiry_days:
        return Batch(0, full=False)
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.expiry_days)
    day = settings.day_start(now).date().isoformat()
    candidates = await _riders_with_expirable_points(uow, cutoff, batch)
    expired = 0
    for rider_id in candidates:
        cause_id = f"{rider_id}:{day}"
        if await already_posted(uow, "expiry", cause_id, EntryKind.expired):
            continue
        balance = await lock_balance(uow, rider_id)
        amount = min(await expirable(uow, rider_id, cutoff), balance)
        if amount <= 0:
            continue
        await post_entry(
            uow,
            rider_id=rider_id,
            kind=EntryKind.expired,
            amount=-amount,
            cause_type="expiry",
            cause_id=cause_id,
            note=f"Points earned before {cutoff.date().isoformat()} expired",
            check_duplicate=False,
        )
        expired += amount
    return Batch(expired, full=len(candidates) >= batch)


WARNINGS: sa.Table = table_of(ExpiryWarning)


async def warn_expiring(uow: UnitOfWork, *, now: datetime | None = None, batch: int = 500) -> Batch:
    """Tell riders whose unspent points expire within ``expiry_warning_days`` (``PointsExpiring``), once per
    rider and local month (``expiry_warnings``' unique key; the insert that loses a race emits nothing).
    Returns the riders warned, and whether it looked at a whole batch (call again while it did)."""
    settings = config.get()
    if not settings.expiry_days or not settings.expiry_warning_days:
        return Batch(0, full=False)
    now = now or utcnow()
    cutoff = now + timedelta(days=settings.expiry_warning_days) - timedelta(days=settings.expiry_days)
    before = now + timedelta(days=settings.expiry_warning_days)
    period = settings.local_month(now).isoformat()[:7]
    warned = sa.select(WARNINGS.c.rider_id).where(WARNINGS.c.period == period)
    candidates = await _riders_with_expirable_points(uow, cutoff, batch, ENTRIES.c.rider_id.notin_(warned))
    told = 0
    insert = pg_insert if uow.db.is_postgres else sqlite_insert
    for rider_id in candidates:
        balance = (
            await uow.session.execute(sa.select(BALANCES.c.balance).where(BALANCES.c.rider_id == rider_id))
        ).scalar_one_or_none() or 0
        points = min(await expirable(uow, rider_id, cutoff), int(balance))
        if points <= 0:
            continue
        created = (
            await uow.session.execute(
                insert(WARNINGS)
                .values(
                    id=uuid7(), rider_id=rider_id, period=period, points=points, expiring_before=before, created_at=now
                )
                .on_conflict_do_nothing(index_elements=["rider_id", "period"])
                .returning(WARNINGS.c.id)
            )
        ).scalar_one_or_none()
        if created is None:
            continue  # another replica told them first
        uow.emit(
            PointsExpiring(
                rider_id=rider_id, points=points, balance=int(balance), expiring_before=before, warned_at=now
            )
        )
        told += 1
    return Batch(told, full=len(candidates) >= batch)
