"""Routes under ``/points/offers``: offers available now at alliance merchants."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.points import merchants, offers
from services.points.models import OfferFilters, OfferPublic
from services.points.views.deps import Caller

router = APIRouter(tags=["redemption"])


@router.get("/offers", summary="Offers available now at alliance merchants")
async def list_offers(
    uow: UoW,
    who: Caller,
    page: PageQuery,
    filters: Annotated[OfferFilters, Query()],
) -> Page[OfferPublic]:
    available = await offers.list_offers(uow, page=page, filters=filters)
    return available.map(lambda row: offers.offer_view(*row))


@router.get("/offers/{offer_id}")
async def get_offer(offer_id: UUID, uow: UoW, who: Caller) -> OfferPublic:
    offer = await offers.get_offer(uow, offer_id)
    merchant = await merchants.get_merchant(uow, None, offer.merchant_id)
    return offers.offer_view(offer, merchant.name)
