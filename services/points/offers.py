"""The merchants' offers: create, change, list, and whether one can be redeemed now. Use cases: take a unit of
work, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.errors import conflict, not_found
from minsheng.platform.fields import apply_patch
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points.models import (
    Merchant,
    MerchantStatus,
    Offer,
    OfferCreate,
    OfferFilters,
    OfferKind,
    OfferPublic,
    OfferUpdate,
)

OFFERS: sa.Table = table_of(Offer)


# --- offers ---------------------------------------------------------------------------------------------------


def offer_view(offer: Offer, merchant_name: str | None = None) -> OfferPublic:
    view = OfferPublic.model_validate(offer)
    view.merchant_name = merchant_name
    return view


async def create_offer(uow: UnitOfWork, merchant: Merchant, data: OfferCreate) -> Offer:
    fen = int((data.discount_yuan * 100).to_integral_value()) if data.discount_yuan is not None else None
    offer = Offer(
        **data.model_dump(exclude={"discount_yuan", "stock"}),
        merchant_id=merchant.id,
        discount_fen=fen if data.kind == OfferKind.discount else None,
        stock_total=data.stock,
        stock_remaining=data.stock,
    )
    uow.session.add(offer)
    return offer


async def get_offer(uow: UnitOfWork, offer_id: UUID, merchant_id: UUID | None = None) -> Offer:
    offer = await uow.session.get(Offer, offer_id)
    if offer is None or (merchant_id is not None and offer.merchant_id != merchant_id):
        raise not_found("offer", offer_id)
    return offer


async def update_offer(uow: UnitOfWork, offer: Offer, data: OfferUpdate) -> Offer:
    apply_patch(offer, data, exclude_none=True, exclude={"add_stock"})
    add = data.add_stock
    offer.updated_at = utcnow()
    if add:
        if offer.stock_remaining is None:
            raise conflict("offer_unlimited", "This offer has unlimited stock.")
        await uow.session.flush()
        result = await uow.session.execute(
            sa.update(OFFERS)
            .where(OFFERS.c.id == offer.id, OFFERS.c.stock_remaining + add >= 0)
            .values(stock_remaining=OFFERS.c.stock_remaining + add, stock_total=OFFERS.c.stock_total + add)
            .returning(OFFERS.c.stock_remaining, OFFERS.c.stock_total)
        )
        row = result.first()
        if row is None:
            raise conflict("stock_below_zero", "Cannot remove more stock than remains.")
        offer.stock_remaining, offer.stock_total = row[0], row[1]
    return offer


async def list_offers(
    uow: UnitOfWork,
    *,
    page: PageRequest,
    filters: OfferFilters,
    available_only: bool = True,
) -> Page[tuple[Offer, str]]:
    query = sa.select(Offer, col(Merchant.name)).join(Merchant, col(Merchant.id) == col(Offer.merchant_id))
    if available_only:
        now = utcnow()
        query = query.where(
            col(Offer.active).is_(True),
            col(Merchant.status) == MerchantStatus.active.value,
            sa.or_(col(Offer.valid_from).is_(None), col(Offer.valid_from) <= now),
            sa.or_(col(Offer.valid_until).is_(None), col(Offer.valid_until) > now),
            sa.or_(col(Offer.stock_remaining).is_(None), col(Offer.stock_remaining) > 0),
        )
    if filters.merchant_id is not None:
        query = query.where(col(Offer.merchant_id) == filters.merchant_id)
    if filters.community is not None:
        query = query.where(col(Merchant.community) == filters.community)
    if filters.kind is not None:
        query = query.where(col(Offer.kind) == filters.kind.value)
    if filters.max_points is not None:
        query = query.where(col(Offer.points_cost) <= filters.max_points)
    keyset = Keyset((Offer.created_at, Offer.id))
    rows = [(o, n) for o, n in (await uow.session.execute(keyset.query(query, page))).all()]
    return keyset.page(rows, page, lambda r: r[0])


def ensure_available(offer: Any, merchant_status: str, now: datetime) -> None:
    if not offer.active or merchant_status != MerchantStatus.active:
        raise conflict("offer_unavailable", "This offer is not available.")
    if offer.valid_from is not None and as_utc(offer.valid_from) > now:
        raise conflict("offer_unavailable", "This offer has not started yet.")
    if offer.valid_until is not None and as_utc(offer.valid_until) <= now:
        raise conflict("offer_unavailable", "This offer has ended.")
