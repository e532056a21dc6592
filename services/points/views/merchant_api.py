"""Routes under ``/points/merchant-api`` (signed requests only, see ``merchant_auth.py`` and ``signing.py``).

Merchants see their own offers, redemptions and statements — never a rider's name, phone or id, only a
per-merchant pseudonym (``rider_ref``)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response

from minsheng.platform.errors import Problem
from minsheng.platform.idempotency import idempotent
from minsheng.platform.inputs import MonthText
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import Runtime, UoW
from services.points import merchants, offers, redemptions
from services.points.merchant_auth import merchant_caller
from services.points.models import (
    MerchantPublic,
    OfferCreate,
    OfferFilters,
    OfferPublic,
    OfferUpdate,
    RedeemRequest,
    RedemptionFilters,
    RedemptionPublic,
    StatementSummary,
    VoidRequest,
)
from services.points.redemptions import MerchantCaller
from services.points.views.deps import statement_response

Caller = Annotated[MerchantCaller, Depends(merchant_caller)]
router = APIRouter(prefix="/merchant-api", tags=["merchant API (signed)"], responses=RATE_LIMITED)


@router.get("/me", summary="The calling merchant (checks your signing works)")
async def me(uow: UoW, caller: Caller) -> MerchantPublic:
    merchant = await merchants.get_merchant(uow, None, caller.merchant_id)
    return MerchantPublic.model_validate(merchant, from_attributes=True)


@router.get("/offers", summary="Your offers (all, including inactive)")
async def my_offers(uow: UoW, caller: Caller, page: PageQuery) -> Page[OfferPublic]:
    mine = await offers.list_offers(
        uow, page=page, filters=OfferFilters(merchant_id=caller.merchant_id), available_only=False
    )
    return mine.map(lambda row: offers.offer_view(*row))


@router.post("/offers", status_code=201, summary="Publish an offer")
async def publish_offer(body: OfferCreate, uow: UoW, caller: Caller) -> OfferPublic:
    merchant = await merchants.get_merchant(uow, None, caller.merchant_id)
    offer = await offers.create_offer(uow, merchant, body)
    await uow.commit()
    return offers.offer_view(offer, merchant.name)


@router.patch("/offers/{offer_id}", summary="Change an offer, restock or end it")
async def update_offer(offer_id: UUID, body: OfferUpdate, uow: UoW, caller: Caller) -> OfferPublic:
    offer = await offers.get_offer(uow, offer_id, caller.merchant_id)
    await offers.update_offer(uow, offer, body)
    await uow.commit()
    return offers.offer_view(offer)


@router.post(
    "/redemptions",
    status_code=201,
    response_model=RedemptionPublic,
    summary="Redeem: the rider's one-time code, an offer, and an Idempotency-Key",
)
async def redeem(
    body: RedeemRequest,
    uow: UoW,
    runtime: Runtime,
    caller: Caller,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    if not idempotency_key:
        raise Problem(
            400,
            "idempotency_key_required",
            "Idempotency-Key required",
            "Send a unique Idempotency-Key per redemption (e.g. your till's receipt number) and reuse "
            "it when you retry.",
        )

    scope = f"merchant:{caller.merchant_id}:redeem"

    async def action() -> tuple[int, RedemptionPublic]:
        return 201, await redemptions.redeem(uow, runtime.settings, caller, body)

    try:
        return await idempotent(uow, key=idempotency_key, scope=scope, body=body, action=action)
    except Problem as exc:
        if exc.code != "invalid_code":
            raise
        problem = exc
        # Two copies of one request raced (a till retrying before the first answer): the other copy spent the
        # code and committed. Answer with its stored response rather than "invalid code".
        await uow.rollback()

        async def fail() -> tuple[int, RedemptionPublic]:
            raise problem

        return await idempotent(uow, key=idempotency_key, scope=scope, body=body, action=fail)


@router.get("/redemptions", summary="Your redemptions, newest first")
async def list_redemptions(
    uow: UoW,
    runtime: Runtime,
    caller: Caller,
    page: PageQuery,
    filters: Annotated[RedemptionFilters, Query()],
) -> Page[RedemptionPublic]:
    redeemed = await redemptions.list_redemptions(uow, caller.merchant_id, page=page, filters=filters)
    return redeemed.map(lambda row: redemptions.redemption_view(runtime.settings, *row, caller.void_window_minutes))


@router.get("/redemptions/{redemption_id}")
async def get_redemption(redemption_id: UUID, uow: UoW, runtime: Runtime, caller: Caller) -> RedemptionPublic:
    r, title = await redemptions.get_redemption(uow, caller.merchant_id, redemption_id)
    return redemptions.redemption_view(runtime.settings, r, title, caller.void_window_minutes)


@router.post(
    "/redemptions/{redemption_id}/void",
    summary="Void within the window: the points and stock go back (voiding twice is harmless)",
)
async def void(
    redemption_id: UUID, uow: UoW, runtime: Runtime, caller: Caller, body: VoidRequest | None = None
) -> RedemptionPublic:
    await redemptions.void(uow, caller, redemption_id, body.reason if body else None)
    await uow.commit()
    r, title = await redemptions.get_redemption(uow, caller.merchant_id, redemption_id)
    return redemptions.redemption_view(runtime.settings, r, title, caller.void_window_minutes)


@router.get(
    "/statements/{month}",
    response_model=StatementSummary,
    summary="Monthly settlement statement (local months); ?format=csv for the spreadsheet",
)
async def statement(
    month: MonthText, uow: UoW, runtime: Runtime, caller: Caller, format: Literal["json", "csv"] = "json"
) -> Response:
    return await statement_response(uow, runtime, caller.merchant_id, month, format)
