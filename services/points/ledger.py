"""The ledger: append-only entries, a balance that never goes negative, caps (expiry: ``expiry``; statements and
leaderboards: ``statements``).

Every entry names its cause (``cause_type``, ``cause_id``) and ``(cause_type, cause_id, kind)`` is unique, so
posting for the same cause twice changes nothing. The balance moves in one conditional UPDATE
(``balance + amount >= 0``) backed by a CHECK constraint: concurrent debits can never overdraw it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.points import PointsPosted
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.sql import one_of, table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config
from services.points.models import BalancePublic, EntryKind, LedgerEntry, Rider, RiderBalance, RiderStatus

ENTRIES: sa.Table = table_of(LedgerEntry)
BALANCES: sa.Table = table_of(RiderBalance)
CREDIT_KINDS = (EntryKind.earned.value, EntryKind.adjusted.value)


@dataclass(frozen=True)
class Posted:
    id: UUID
    rider_id: UUID
    kind: EntryKind
    amount: int
    balance_after: int
    created_at: datetime
    cause_type: str = ""
    cause_id: str = ""
    note: str | None = None


# The statements below are built once (per shape) with bound parameters for the per-call values, so neither
# the expression trees nor their compiled SQL are rebuilt per request. UPDATE statements name their
# parameters ``b_*``: SQLAlchemy reserves the column names for the SET clause.


@functools.cache
def _read_balance(for_update: bool) -> sa.Select[Any]:
    query = sa.select(BALANCES.c.balance).where(BALANCES.c.rider_id == sa.bindparam("b_rider"))
    return query.with_for_update() if for_update else query


_ALREADY_POSTED = sa.select(ENTRIES.c.id).where(
    ENTRIES.c.cause_type == sa.bindparam("cause_type"),
    ENTRIES.c.cause_id == sa.bindparam("cause_id"),
    ENTRIES.c.kind == sa.bindparam("kind"),
)
_INSERT_ENTRY = sa.insert(ENTRIES)


@functools.cache
def _move_balance(require_active_rider: bool) -> sa.Update:
    """``balance += b_amount`` unless that goes below zero (and, if asked, unless the rider is not active)."""
    amount = sa.bindparam("b_amount", type_=BALANCES.c.balance.type)
    where: list[sa.ColumnElement[bool]] = [
        BALANCES.c.rider_id == sa.bindparam("b_rider"),
        BALANCES.c.balance + amount >= 0,
    ]
    if require_active_rider:
        where.append(sa.exists().where(RIDERS.c.id == BALANCES.c.rider_id, RIDERS.c.status == RiderStatus.active.value))
    return (
        sa.update(BALANCES)
        .where(*where)
        .values(balance=BALANCES.c.balance + amount, updated_at=sa.bindparam("b_now", type_=BALANCES.c.updated_at.type))
        .returning(BALANCES.c.balance)
    )


_ENTRY_COLUMNS = (
    "id",
    "rider_id",
    "kind",
    "amount",
    "balance_after",
    "cause_type",
    "cause_id",
    "event_id",
    "note",
    "created_at",
)


@functools.cache
def _move_balance_and_post(require_active_rider: bool) -> sa.Insert:
    """PostgreSQL: ``_move_balance`` and the entry's INSERT in one statement, one round trip —
    ``WITH moved AS (UPDATE rider_balances … RETURNING balance) INSERT INTO ledger_entries … SELECT … FROM moved``
    (no row, nothing inserted, when the UPDATE matched none). Parameters: ``b_*`` and ``e_*``."""
    moved = _move_balance(require_active_rider).cte("moved")

    def bound(name: str, column: str) -> sa.BindParameter[Any]:
        return sa.bindparam(name, type_=ENTRIES.c[column].type)

    row = sa.select(
        bound("e_id", "id"),
        bound("b_rider", "rider_id"),
        bound("e_kind", "kind"),
        bound("b_amount", "amount"),
        moved.c.balance,
        bound("e_cause_type", "cause_type"),
        bound("e_cause_id", "cause_id"),
        bound("e_event_id", "event_id"),
        bound("e_note", "note"),
        bound("b_now", "created_at"),
    )
    return sa.insert(ENTRIES).from_select(_ENTRY_COLUMNS, row).returning(ENTRIES.c.balance_after)


async def lock_balance(uow: UnitOfWork, rider_id: UUID) -> int:
    """Read the balance, locking the row on PostgreSQL so caps and limits are checked one at a time per rider."""
    query = _read_balance(uow.db.is_postgres)
    balance = (await uow.session.execute(query, {"b_rider": rider_id})).scalar_one_or_none()
    if balance is None:
        raise not_found("rider", rider_id)
    return int(balance)


async def already_posted(uow: UnitOfWork, cause_type: str, cause_id: str, kind: EntryKind) -> bool:
    found = await uow.session.execute(
        _ALREADY_POSTED, {"cause_type": cause_type, "cause_id": cause_id, "kind": kind.value}
    )
    return found.first() is not None


async def post_entry(
    uow: UnitOfWork,
    *,
    rider_id: UUID,
    kind: EntryKind,
    amount: int,
    cause_type: str,
    cause_id: str,
    event_id: str | None = None,
    note: str | None = None,
    check_duplicate: bool = True,
    require_active_rider: bool = False,
) -> Posted | None:
    """Append one ledger entry and move the balance, in one transaction. Idempotent on the cause: posting
    the same (cause, kind) again returns None and changes nothing. Never lets the balance go below zero
    (409 ``insufficient_points``). ``require_active_rider`` adds "the rider is active" to the same UPDATE
    (one round trip); when it fails the caller sees ``insufficient_points`` too and must tell the two apart
    itself."""
    if check_duplicate and await already_posted(uow, cause_type, cause_id, kind):
        return None
    now, entry_id, note = utcnow(), uuid7(), note[:500] if note else None
    moving = {"b_rider": rider_id, "b_amount": amount, "b_now": now}
    if uow.db.is_postgres:
        posted = await uow.fetchrow(
            _move_balance_and_post(require_active_rider),
            {
                **moving,
                "e_id": entry_id,
                "e_kind": kind.value,
                "e_cause_type": cause_type,
                "e_cause_id": cause_id,
                "e_event_id": event_id,
                "e_note": note,
            },
        )
        new_balance = None if posted is None else posted[0]
    else:
        new_balance = (await uow.session.execute(_move_balance(require_active_rider), moving)).scalar_one_or_none()
        if new_balance is not None:
            await uow.session.execute(
                _INSERT_ENTRY,
                {
                    "id": entry_id,
                    "rider_id": rider_id,
                    "kind": kind.value,
                    "amount": amount,
                    "balance_after": new_balance,
                    "cause_type": cause_type,
                    "cause_id": cause_id,
                    "event_id": event_id,
                    "note": note,
                    "created_at": now,
                },
            )
    if new_balance is None:
        current = (await uow.session.execute(_read_balance(False), {"b_rider": rider_id})).scalar_one_or_none()
        if current is None:
            raise not_found("rider", rider_id)
        raise conflict(
            "insufficient_points",
            _t("The balance ({current}) is less than {amount} points.", current=current, amount=-amount),
            balance=current,
        )
    uow.emit(
        PointsPosted(
            entry_id=entry_id,
            rider_id=rider_id,
            kind=kind.value,
            amount=amount,
            balance_after=new_balance,
            cause_type=cause_type,
            cause_id=cause_id,
            posted_at=now,
        )
    )
    return Posted(entry_id, rider_id, kind, amount, int(new_balance), now, cause_type, cause_id, note)


@functools.cache
def _earned_since(by_cause_type: bool) -> sa.Select[Any]:
    query = sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.amount), 0)).where(
        ENTRIES.c.rider_id == sa.bindparam("rider_id"),
        ENTRIES.c.kind == EntryKind.earned.value,
        ENTRIES.c.created_at >= _since("since"),
    )
    return query.where(ENTRIES.c.cause_type == sa.bindparam("cause_type")) if by_cause_type else query


async def earned_since(uow: UnitOfWork, rider_id: UUID, since: datetime, cause_type: str | None = None) -> int:
    params = {"rider_id": rider_id, "since": since, "cause_type": cause_type}
    return int((await uow.session.execute(_earned_since(cause_type is not None), params)).scalar_one())


@functools.cache
def _earning_so_far() -> sa.Select[Any]:
    """For ``earn``, in one round trip: whether this cause was credited already, and what the rider earned
    since ``since`` of this cause type and in all (``earned_since`` twice)."""
    posted = sa.exists().where(
        ENTRIES.c.cause_type == sa.bindparam("cause_type"),
        ENTRIES.c.cause_id == sa.bindparam("cause_id"),
        ENTRIES.c.kind == EntryKind.earned.value,
    )
    return sa.select(
        posted.label("posted"),
        _earned_since(True).scalar_subquery().label("of_type"),
        _earned_since(False).scalar_subquery().label("in_all"),
    )


@dataclass(frozen=True)
class Earning:
    entry: Posted | None
    amount: int
    capped: bool
    duplicate: bool = False


async def earn(
    uow: UnitOfWork,
    *,
    rider_id: UUID,
    amount: int,
    cause_type: str,
    cause_id: str,
    event_id: str | None,
    note: str,
    category_cap: int = 0,
) -> Earning:
    """Credit earned points under the daily caps: ``category_cap`` (points of this cause type per local
    day) and the global ``daily_earn_cap``. What is over the cap is not credited (the entry says so)."""
    settings = config.get()
    # The balance row's lock first: the sums below are then read (a new snapshot) after any concurrent
    # credit for this rider has committed.
    await lock_balance(uow, rider_id)
    so_far = (
        await uow.session.execute(
            _earning_so_far(),
            {
                "rider_id": rider_id,
                "since": settings.day_start(),  # the daily caps count the clock's local day
                "cause_type": cause_type,
                "cause_id": cause_id,
            },
        )
    ).one()
    if so_far.posted:
        return Earning(None, 0, False, duplicate=True)
    allowed = amount
    if category_cap:
        allowed = min(allowed, category_cap - int(so_far.of_type))
    if settings.daily_earn_cap:
        allowed = min(allowed, settings.daily_earn_cap - int(so_far.in_all))
    allowed = max(allowed, 0)
    capped = allowed < amount
    if allowed == 0:
        return Earning(None, 0, capped)
    if capped:
        note = f"{note} (daily cap: {allowed} of {amount})"
    entry = await post_entry(
        uow,
        rider_id=rider_id,
        kind=EntryKind.earned,
        amount=allowed,
        cause_type=cause_type,
        cause_id=cause_id,
        event_id=event_id,
        note=note,
        check_duplicate=False,
    )
    return Earning(entry, allowed, capped)


async def adjust(uow: UnitOfWork, rider_id: UUID, amount: int, reason: str, actor: str) -> Posted:
    entry = await post_entry(
        uow,
        rider_id=rider_id,
        kind=EntryKind.adjusted,
        amount=amount,
        cause_type="adjustment",
        cause_id=str(uuid7()),
        note=f"{reason} — {actor}"[:500],
        check_duplicate=False,
    )
    assert entry is not None
    return entry


# --- reading --------------------------------------------------------------------------------------------------

RIDERS: sa.Table = table_of(Rider)


def _sum_of_entries(*where: Any) -> sa.ScalarSelect[Any]:
    return (
        sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.amount), 0))
        .where(ENTRIES.c.rider_id == BALANCES.c.rider_id, *where)
        .scalar_subquery()
    )


def _since(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=ENTRIES.c.created_at.type)


@functools.cache
def _balance_columns(with_expiry: bool) -> tuple[Any, ...]:
    """The balance row, today's earnings and (when points expire) the credits too recent to expire within
    the warning window: one statement. The ledger moves the balance with every entry (``post_entry``), so
    ``balance = credits - debits`` and the unspent points credited before the cutoff (``expirable``) are
    ``balance - credits since the cutoff``: only that window of the ledger is read, not all of it.

    Built once per shape (cached): the times are bound parameters (``day_start``, ``cutoff``, see
    ``_balance_params``), so SQLAlchemy also reuses the compiled SQL."""
    earned_today = _sum_of_entries(
        ENTRIES.c.kind == EntryKind.earned.value, ENTRIES.c.created_at >= _since("day_start")
    )
    recent: Any = sa.literal(0)
    if with_expiry:
        recent = _sum_of_entries(
            one_of(ENTRIES.c.kind, CREDIT_KINDS), ENTRIES.c.amount > 0, ENTRIES.c.created_at >= _since("cutoff")
        )
    return (
        BALANCES.c.rider_id,
        BALANCES.c.balance,
        BALANCES.c.updated_at,
        earned_today.label("earned_today"),
        recent.label("recent_credits"),
    )


def _balance_params(now: datetime) -> dict[str, Any]:
    settings = config.get()
    params: dict[str, Any] = {"day_start": settings.day_start()}  # earned today: the caps' local day
    if settings.expiry_days:
        params["cutoff"] = now + timedelta(days=settings.expiry_warning_days) - timedelta(days=settings.expiry_days)
    return params


@functools.cache
def _balance_by_rider(with_expiry: bool) -> sa.Select[Any]:
    return sa.select(*_balance_columns(with_expiry)).where(BALANCES.c.rider_id == sa.bindparam("rider_id"))


@functools.cache
def _balance_by_subject(with_expiry: bool) -> sa.Select[Any]:
    return (
        sa.select(RIDERS.c.id.label("rider"), *_balance_columns(with_expiry))
        .select_from(RIDERS.outerjoin(BALANCES, BALANCES.c.rider_id == RIDERS.c.id))
        .where(RIDERS.c.subject == sa.bindparam("subject"))
    )


def _balance_public(row: sa.Row[Any], now: datetime) -> BalancePublic:
    settings = config.get()
    balance = int(row.balance)
    expiring, before = 0, None
    if settings.expiry_days:
        expiring = max(0, balance - int(row.recent_credits))
        before = now + timedelta(days=settings.expiry_warning_days) if expiring else None
    return BalancePublic(
        rider_id=row.rider_id,
        balance=balance,
        updated_at=row.updated_at,
        expiring_points=expiring,
        expiring_before=before,
        earned_today=int(row.earned_today),
        daily_cap=settings.daily_earn_cap,
    )


async def balance_view(uow: UnitOfWork, rider_id: UUID) -> BalancePublic:
    now = utcnow()
    query = _balance_by_rider(bool(config.get().expiry_days))
    row = await uow.fetchrow(query, {"rider_id": rider_id, **_balance_params(now)})
    if row is None:
        raise not_found("rider", rider_id)
    return _balance_public(row, now)


async def balance_of_subject(uow: UnitOfWork, subject: str) -> BalancePublic:
    """``balance_view`` for the rider registered under ``subject``, in one round trip (404
    ``rider_not_registered`` as ``rider_by_subject`` answers when there is none)."""
    now = utcnow()
    query = _balance_by_subject(bool(config.get().expiry_days))
    row = await uow.fetchrow(query, {"subject": subject, **_balance_params(now)})
    if row is None:
        raise Problem(
            404, "rider_not_registered", "Not registered as a rider", "Register first with POST /points/riders."
        )
    if row.rider_id is None:
        raise not_found("rider", row.rider)
    return _balance_public(row, now)
