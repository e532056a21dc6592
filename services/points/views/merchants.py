"""Routes under ``/points/merchants`` (staff): merchants, their API keys, offers, redemptions, statements."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from minsheng.platform.inputs import MonthText
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import Runtime, UoW
from services.points import merchants, offers, redemptions
from services.points.models import (
    CommunityCode,
    CredentialCreate,
    CredentialIssued,
    CredentialPublic,
    MerchantCreate,
    MerchantPublic,
    MerchantStatus,
    MerchantUpdate,
    OfferCreate,
    OfferPublic,
    Redemption,
    RedemptionFilters,
    StaffRedemptionView,
    StatementSummary,
    TypeCode,
)
from services.points.views.deps import Staff, statement_response

router = APIRouter(tags=["merchants (staff)"])


@router.post("/merchants", status_code=201, summary="Onboard an alliance merchant")
async def create_merchant(body: MerchantCreate, uow: UoW, who: Staff, cipher: Cipher) -> MerchantPublic:
    merchant = await merchants.create_merchant(uow, who, body, cipher)
    await uow.commit()
    return MerchantPublic.model_validate(merchant, from_attributes=True)


@router.get("/merchants")
async def list_merchants(
    uow: UoW,
    who: Staff,
    page: PageQuery,
    community: CommunityCode | None = None,
    status: MerchantStatus | None = None,
) -> Page[MerchantPublic]:
    found = await merchants.list_merchants(uow, who, page=page, community=community, status=status)
    return found.map(from_row(MerchantPublic))


@router.get("/merchants/{merchant_id}")
async def get_merchant(merchant_id: UUID, uow: UoW, who: Staff) -> MerchantPublic:
    return MerchantPublic.model_validate(await merchants.get_merchant(uow, who, merchant_id), from_attributes=True)


@router.patch("/merchants/{merchant_id}", summary="Change details, the void window, or suspend / reactivate")
async def update_merchant(
    merchant_id: UUID, body: MerchantUpdate, uow: UoW, who: Staff, cipher: Cipher
) -> MerchantPublic:
    merchant = await merchants.update_merchant(uow, await merchants.get_merchant(uow, who, merchant_id), body, cipher)
    await uow.commit()
    return MerchantPublic.model_validate(merchant, from_attributes=True)


@router.post(
    "/merchants/{merchant_id}/credentials", status_code=201, summary="Issue an API key; the secret is shown once"
)
async def issue_credential(
    merchant_id: UUID, uow: UoW, cipher: Cipher, who: Staff, body: CredentialCreate | None = None
) -> CredentialIssued:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    credential, secret = await merchants.issue_credential(uow, cipher, who, merchant, body.label if body else None)
    await uow.commit()
    return CredentialIssued(
        **CredentialPublic.model_validate(credential, from_attributes=True).model_dump(), secret=secret
    )


@router.get("/merchants/{merchant_id}/credentials")
async def list_credentials(merchant_id: UUID, uow: UoW, who: Staff) -> list[CredentialPublic]:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    return [
        CredentialPublic.model_validate(c, from_attributes=True)
        for c in await merchants.credentials_of(uow, merchant.id)
    ]


@router.delete("/merchants/{merchant_id}/credentials/{key_id}", summary="Revoke an API key at once")
async def revoke_credential(merchant_id: UUID, key_id: TypeCode, uow: UoW, who: Staff) -> CredentialPublic:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    credential = await merchants.revoke_credential(uow, merchant.id, key_id)
    await uow.commit()
    return CredentialPublic.model_validate(credential, from_attributes=True)


@router.post("/merchants/{merchant_id}/offers", status_code=201, summary="Publish an offer on a merchant's behalf")
async def create_offer(merchant_id: UUID, body: OfferCreate, uow: UoW, who: Staff) -> OfferPublic:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    offer = await offers.create_offer(uow, merchant, body)
    await uow.commit()
    return offers.offer_view(offer, merchant.name)


@router.get(
    "/merchants/{merchant_id}/redemptions", summary="A merchant's redemptions (disputes, audits); with the rider's id"
)
async def merchant_redemptions(
    merchant_id: UUID,
    uow: UoW,
    runtime: Runtime,
    who: Staff,
    page: PageQuery,
    filters: Annotated[RedemptionFilters, Query()],
) -> Page[StaffRedemptionView]:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    redeemed = await redemptions.list_redemptions(uow, merchant.id, page=page, filters=filters)

    def staff_view(row: tuple[Redemption, str]) -> StaffRedemptionView:
        redemption, title = row
        public = redemptions.redemption_view(runtime.settings, redemption, title, merchant.void_window_minutes)
        return StaffRedemptionView(**public.model_dump(), rider_id=redemption.rider_id)

    return redeemed.map(staff_view)


@router.get(
    "/merchants/{merchant_id}/statements/{month}",
    response_model=StatementSummary,
    summary="A merchant's monthly settlement statement; ?format=csv",
)
async def merchant_statement(
    merchant_id: UUID, month: MonthText, uow: UoW, runtime: Runtime, who: Staff, format: Literal["json", "csv"] = "json"
) -> Response:
    merchant = await merchants.get_merchant(uow, who, merchant_id)
    return await statement_response(uow, runtime, merchant.id, month, format)
