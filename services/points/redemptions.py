"""Redeeming an offer: the rider's one-time code, the redemption (code, points, stock in one transaction), voids
and the lists of redemptions. Use cases: take a unit of work, never commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.pagination import Keyset, Page, PageRequest
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings
from services.points import config, ledger
from services.points.client import QR_PREFIX, code_from_qr
from services.points.models import (
    CodeIssued,
    EntryKind,
    Merchant,
    Offer,
    RedeemRequest,
    Redemption,
    RedemptionCode,
    RedemptionFilters,
    RedemptionPublic,
    RedemptionStatus,
    Rider,
    RiderRedemptionPublic,
    RiderStatus,
)
from services.points.offers import ensure_available, get_offer

CODES: sa.Table = table_of(RedemptionCode)
OFFERS: sa.Table = table_of(Offer)
REDEMPTIONS: sa.Table = table_of(Redemption)
MERCHANTS: sa.Table = table_of(Merchant)


def yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(Decimal("0.01"))


def rider_ref(settings: Settings, merchant_id: UUID, rider_id: UUID) -> str:
    """A stable pseudonym for a rider, different at every merchant: a merchant can tell a regular customer
    apart without learning who they are, and two merchants cannot match their customers."""
    key = hashlib.sha256(b"minsheng-rider-ref:" + settings.secret.encode()).digest()
    return "r_" + hmac.new(key, f"{merchant_id}:{rider_id}".encode(), hashlib.sha256).hexdigest()[:16]


# --- the rider's one-time code --------------------------------------------------------------------------------


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def issue_code(uow: UnitOfWork, rider: Rider, offer_id: UUID | None) -> CodeIssued:
    """An 8-digit code (and QR payload) that lives ``code_ttl_seconds`` and works once."""
    settings = config.get()
    now = utcnow()
    if offer_id is not None:
        offer = await get_offer(uow, offer_id)
        merchant = await uow.session.get(Merchant, offer.merchant_id)
        ensure_available(offer, merchant.status if merchant else "", now)
    active = int(
        (
            await uow.session.execute(
                sa.select(sa.func.count())
                .select_from(CODES)
                .where(CODES.c.rider_id == rider.id, CODES.c.used_at.is_(None), CODES.c.expires_at > now)
            )
        ).scalar_one()
    )
    if active >= settings.max_active_codes:
        raise conflict(
            "too_many_codes", _t("You have {active} unused codes; use or let them expire first.", active=active)
        )
    expires = now + timedelta(seconds=settings.code_ttl_seconds)
    for _ in range(5):
        code = f"{secrets.randbelow(10**8):08d}"
        digest = code_hash(code)
        taken = await uow.session.execute(sa.select(CODES.c.id).where(CODES.c.code_hash == digest))
        if taken.first() is None:
            break
    else:  # pragma: no cover - 10^8 codes, a handful live at a time
        raise Problem(503, "unavailable", "Try again", "Could not allocate a code; retry.")
    await uow.session.execute(
        sa.insert(CODES).values(
            id=uuid7(), code_hash=digest, rider_id=rider.id, offer_id=offer_id, expires_at=expires, created_at=now
        )
    )
    balance = (
        await uow.session.execute(sa.select(ledger.BALANCES.c.balance).where(ledger.BALANCES.c.rider_id == rider.id))
    ).scalar_one()
    return CodeIssued(code=code, qr_payload=QR_PREFIX + code, offer_id=offer_id, expires_at=expires, balance=balance)


# --- redemption -----------------------------------------------------------------------------------------------

# The redemption's statements, built once; per-request values are bound parameters (``b_*`` in the UPDATE:
# SQLAlchemy reserves the column names for its SET clause).
_CONSUME_CODE = (
    sa.update(CODES)
    .where(
        CODES.c.code_hash == sa.bindparam("b_hash"),
        CODES.c.used_at.is_(None),
        CODES.c.expires_at > sa.bindparam("b_now", type_=CODES.c.expires_at.type),
    )
    .values(used_at=sa.bindparam("b_now", type_=CODES.c.used_at.type))
    .returning(CODES.c.rider_id, CODES.c.offer_id.label("bound_offer"))
)
_OFFER_OF_MERCHANT = (
    sa.select(OFFERS, MERCHANTS.c.status.label("merchant_status"))
    .join(MERCHANTS, MERCHANTS.c.id == OFFERS.c.merchant_id)
    .where(OFFERS.c.id == sa.bindparam("o_offer"), OFFERS.c.merchant_id == sa.bindparam("o_merchant"))
)
# PostgreSQL: both in one round trip — ``WITH consumed AS (UPDATE redemption_codes … RETURNING …) SELECT …
# FROM consumed LEFT JOIN (offers JOIN merchants)``: no row when no code was consumed, offer columns NULL
# when the offer is not the caller's.
_CONSUMED = _CONSUME_CODE.cte("consumed")
_CONSUME_CODE_WITH_OFFER = sa.select(
    _CONSUMED.c.rider_id, _CONSUMED.c.bound_offer, OFFERS, MERCHANTS.c.status.label("merchant_status")
).select_from(
    _CONSUMED.outerjoin(
        OFFERS.join(MERCHANTS, MERCHANTS.c.id == OFFERS.c.merchant_id),
        sa.and_(OFFERS.c.id == sa.bindparam("o_offer"), OFFERS.c.merchant_id == sa.bindparam("o_merchant")),
    )
)
_RIDER_STATUS = sa.select(table_of(Rider).c.status).where(table_of(Rider).c.id == sa.bindparam("rider_id"))
_REDEEMED_SO_FAR = sa.select(sa.func.coalesce(sa.func.sum(REDEMPTIONS.c.quantity), 0).label("taken")).where(
    REDEMPTIONS.c.offer_id == sa.bindparam("offer_id", type_=REDEMPTIONS.c.offer_id.type),
    REDEMPTIONS.c.rider_id == sa.bindparam("rider_id", type_=REDEMPTIONS.c.rider_id.type),
    REDEMPTIONS.c.status == RedemptionStatus.completed.value,
)
_TAKE_STOCK = (
    sa.update(OFFERS)
    .where(
        OFFERS.c.id == sa.bindparam("b_offer", type_=OFFERS.c.id.type),
        OFFERS.c.stock_remaining >= sa.bindparam("b_quantity", type_=OFFERS.c.stock_remaining.type),
    )
    .values(stock_remaining=OFFERS.c.stock_remaining - sa.bindparam("b_quantity", type_=OFFERS.c.stock_remaining.type))
    .returning(OFFERS.c.stock_remaining)
)


async def _rider_status(uow: UnitOfWork, rider_id: UUID) -> str | None:
    row = await uow.fetchrow(_RIDER_STATUS, {"rider_id": rider_id})
    return None if row is None else row.status


@dataclass(frozen=True)
class MerchantCaller:
    merchant_id: UUID
    key_id: str
    void_window_minutes: int


async def redeem(uow: UnitOfWork, settings: Settings, caller: MerchantCaller, data: RedeemRequest) -> RedemptionPublic:
    """Consume the code, debit the points, take the stock, record the redemption — one transaction.

    Ordering matters for concurrency on PostgreSQL: the code is consumed by a conditional UPDATE (one winner),
    the debit's conditional UPDATE locks the rider's balance row, and only then is the per-rider limit counted,
    so two redemptions for one rider are checked one after the other."""
    now = utcnow()
    code = code_from_qr(data.code)
    # No parameter may be named like a code column (``offer_id``): the UPDATE would SET it.
    code_params = {"b_hash": code_hash(code), "b_now": now}
    offer_params = {"o_offer": data.offer_id, "o_merchant": caller.merchant_id}
    if uow.db.is_postgres:
        consumed = offer_row = await uow.fetchrow(_CONSUME_CODE_WITH_OFFER, {**code_params, **offer_params})
        if offer_row is not None and offer_row.id is None:
            offer_row = None  # the code was consumed, the offer is not this merchant's
    else:
        consumed = await uow.fetchrow(_CONSUME_CODE, code_params)
        offer_row = None
    if consumed is None:
        raise Problem(
            422,
            "invalid_code",
            "Invalid code",
            "The code is unknown, expired or already used; ask the rider to show a new one.",
        )
    rider_id, bound_offer = consumed.rider_id, consumed.bound_offer
    if bound_offer is not None and bound_offer != data.offer_id:
        raise Problem(
            422, "code_offer_mismatch", "Code is for another offer", "The rider chose a different offer for this code."
        )
    if not uow.db.is_postgres:
        offer_row = await uow.fetchrow(_OFFER_OF_MERCHANT, offer_params)
    if offer_row is None:
        raise not_found("offer", data.offer_id)
    offer = offer_row
    ensure_available(offer, offer_row.merchant_status, now)
    points = offer.points_cost * data.quantity
    redemption_id = uuid7()
    try:
        # The rider must (still) be active: checked inside the debit's UPDATE, no extra round trip.
        await ledger.post_entry(
            uow,
            rider_id=rider_id,
            kind=EntryKind.redeemed,
            amount=-points,
            cause_type="redemption",
            cause_id=str(redemption_id),
            note=f"{offer.title} ×{data.quantity}",
            check_duplicate=False,
            require_active_rider=True,
        )
    except Problem as exc:
        if exc.code == "insufficient_points" and (await _rider_status(uow, rider_id)) != RiderStatus.active:
            raise conflict("rider_not_eligible", "This rider cannot redeem points at the moment.") from None
        raise
    if offer.per_rider_limit is not None:
        so_far = await uow.fetchrow(_REDEEMED_SO_FAR, {"offer_id": offer.id, "rider_id": rider_id})
        taken = int(so_far.taken) if so_far is not None else 0
        if taken + data.quantity > offer.per_rider_limit:
            raise conflict(
                "rider_limit_reached",
                _t(
                    "This offer allows {per_rider_limit} per rider; {taken} already redeemed.",
                    per_rider_limit=offer.per_rider_limit,
                    taken=taken,
                ),
            )
    if offer.stock_remaining is not None:
        left = await uow.fetchrow(_TAKE_STOCK, {"b_offer": offer.id, "b_quantity": data.quantity})
        if left is None:
            raise conflict("out_of_stock", "Not enough stock left for this offer.")
    discount = offer.discount_fen * data.quantity if offer.discount_fen is not None else None
    # Nothing reads it back: written at commit with the outbox row (one statement on PostgreSQL).
    uow.insert_at_commit(
        REDEMPTIONS,
        {
            "id": redemption_id,
            "merchant_id": caller.merchant_id,
            "offer_id": offer.id,
            "rider_id": rider_id,
            "quantity": data.quantity,
            "points": points,
            "discount_fen": discount,
            "status": RedemptionStatus.completed.value,
            "created_at": now,
        },
    )
    return RedemptionPublic(
        id=redemption_id,
        offer_id=offer.id,
        offer_title=offer.title,
        quantity=data.quantity,
        points=points,
        discount_yuan=yuan(discount),
        status=RedemptionStatus.completed,
        rider_ref=rider_ref(settings, caller.merchant_id, rider_id),
        created_at=now,
        void_until=now + timedelta(minutes=caller.void_window_minutes),
    )


def _what_was_redeemed(r: Any, title: str | None) -> dict[str, Any]:
    """What the merchant's and the rider's views of a redemption both show."""
    return {
        "id": r.id,
        "offer_id": r.offer_id,
        "offer_title": title,
        "quantity": r.quantity,
        "points": r.points,
        "discount_yuan": yuan(r.discount_fen),
        "status": RedemptionStatus(r.status),
    }


def redemption_view(settings: Settings, r: Any, title: str | None, window_minutes: int) -> RedemptionPublic:
    created = as_utc(r.created_at)
    return RedemptionPublic(
        **_what_was_redeemed(r, title),
        rider_ref=rider_ref(settings, r.merchant_id, r.rider_id),
        created_at=created,
        void_until=created + timedelta(minutes=window_minutes),
        voided_at=as_utc(r.voided_at) if r.voided_at else None,
        void_reason=r.void_reason,
    )


async def get_redemption(uow: UnitOfWork, merchant_id: UUID, redemption_id: UUID) -> tuple[Redemption, str]:
    row = (
        await uow.session.execute(
            sa.select(Redemption, col(Offer.title))
            .join(Offer, col(Offer.id) == col(Redemption.offer_id))
            .where(col(Redemption.id) == redemption_id, col(Redemption.merchant_id) == merchant_id)
        )
    ).first()
    if row is None:
        raise not_found("redemption", redemption_id)
    return row[0], row[1]


async def void(uow: UnitOfWork, caller: MerchantCaller, redemption_id: UUID, reason: str | None) -> None:
    """Give the points (and stock) back within the merchant's void window. Voiding twice is a no-op."""
    redemption, _ = await get_redemption(uow, caller.merchant_id, redemption_id)
    if redemption.status == RedemptionStatus.voided:
        return
    now = utcnow()
    if as_utc(redemption.created_at) + timedelta(minutes=caller.void_window_minutes) < now:
        raise conflict(
            "void_window_passed",
            _t(
                "Redemptions can be voided within {void_window_minutes} minutes only.",
                void_window_minutes=caller.void_window_minutes,
            ),
        )
    changed = await uow.session.execute(
        sa.update(REDEMPTIONS)
        .where(REDEMPTIONS.c.id == redemption.id, REDEMPTIONS.c.status == RedemptionStatus.completed.value)
        .values(status=RedemptionStatus.voided.value, voided_at=now, void_reason=reason)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return  # a concurrent void won
    await ledger.post_entry(
        uow,
        rider_id=redemption.rider_id,
        kind=EntryKind.voided,
        amount=redemption.points,
        cause_type="redemption",
        cause_id=str(redemption.id),
        note=f"Voided by the merchant{': ' + reason if reason else ''}",
    )
    await uow.session.execute(
        sa.update(OFFERS)
        .where(OFFERS.c.id == redemption.offer_id, OFFERS.c.stock_remaining.is_not(None))
        .values(stock_remaining=OFFERS.c.stock_remaining + redemption.quantity)
    )


NEWEST_FIRST = Keyset((Redemption.created_at, Redemption.id))


async def list_redemptions(
    uow: UnitOfWork,
    merchant_id: UUID,
    *,
    page: PageRequest,
    filters: RedemptionFilters,
) -> Page[tuple[Redemption, str]]:
    query = (
        sa.select(Redemption, col(Offer.title))
        .join(Offer, col(Offer.id) == col(Redemption.offer_id))
        .where(col(Redemption.merchant_id) == merchant_id)
    )
    if filters.status is not None:
        query = query.where(col(Redemption.status) == filters.status.value)
    if filters.since is not None:
        query = query.where(col(Redemption.created_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(Redemption.created_at) < filters.until)
    rows = [(r, t) for r, t in (await uow.session.execute(NEWEST_FIRST.query(query, page))).all()]
    return NEWEST_FIRST.page(rows, page, lambda r: r[0])


async def rider_redemptions(uow: UnitOfWork, rider: Rider, *, page: PageRequest) -> Page[RiderRedemptionPublic]:
    query = (
        sa.select(Redemption, col(Offer.title), col(Merchant.name))
        .join(Offer, col(Offer.id) == col(Redemption.offer_id))
        .join(Merchant, col(Merchant.id) == col(Redemption.merchant_id))
        .where(col(Redemption.rider_id) == rider.id)
    )
    rows = (await uow.session.execute(NEWEST_FIRST.query(query, page))).all()
    redeemed = NEWEST_FIRST.page(list(rows), page, lambda r: r[0])

    def public(row: Any) -> RiderRedemptionPublic:
        r, title, name = row
        return RiderRedemptionPublic(
            **_what_was_redeemed(r, title),
            merchant_id=r.merchant_id,
            merchant_name=name,
            created_at=r.created_at,
            voided_at=r.voided_at,
        )

    return redeemed.map(public)
