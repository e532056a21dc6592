"""The caring-merchant alliance (爱心商家联盟): merchants and their API credentials, and the housekeeping of codes
and nonces. Offers, redemptions and settlement have modules of their own. Use cases: take a unit of work, never
commit."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure, outside_scope, visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.errors import not_found
from minsheng.platform.fields import apply_patch
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher, seal_phone_on
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points.access import covers_merchant, places_in
from services.points.models import (
    Merchant,
    MerchantCreate,
    MerchantCredential,
    MerchantStatus,
    MerchantUpdate,
    RedemptionCode,
)

CODES: sa.Table = table_of(RedemptionCode)


# --- merchants and credentials --------------------------------------------------------------------------------


async def create_merchant(uow: UnitOfWork, who: Principal, data: MerchantCreate, fc: FieldCipher) -> Merchant:
    ensure(places_in(who, data.community), outside_scope("You cannot onboard merchants there."))
    merchant = Merchant(**data.model_dump(), created_by=who.sub)
    seal_phone_on(merchant, fc, "contact_phone")
    uow.session.add(merchant)
    return merchant


async def get_merchant(uow: UnitOfWork, who: Principal | None, merchant_id: UUID) -> Merchant:
    """``who`` is None for the merchant API (the signed request is the merchant itself)."""
    merchant = await uow.session.get(Merchant, merchant_id)
    return visible_or_404(merchant, lambda m: who is None or covers_merchant(who, m), "merchant", merchant_id)


async def update_merchant(uow: UnitOfWork, merchant: Merchant, data: MerchantUpdate, fc: FieldCipher) -> Merchant:
    changes = apply_patch(merchant, data, exclude_none=True)
    if "contact_phone" in changes:
        merchant.contact_phone_enc = None
        seal_phone_on(merchant, fc, "contact_phone")
    merchant.updated_at = utcnow()
    return merchant


async def list_merchants(
    uow: UnitOfWork,
    who: Principal,
    *,
    page: PageRequest,
    community: str | None = None,
    status: MerchantStatus | None = None,
) -> Page[Merchant]:
    query = select(Merchant)
    if not who.is_admin:
        query = query.where(col(Merchant.community).in_(who.scoped_values("community")))
    if community is not None:
        query = query.where(Merchant.community == community)
    if status is not None:
        query = query.where(Merchant.status == status.value)
    return await keyset_page(uow.session, query, Keyset((Merchant.created_at, Merchant.id)), page)


async def issue_credential(
    uow: UnitOfWork, fc: FieldCipher, who: Principal, merchant: Merchant, label: str | None
) -> tuple[MerchantCredential, str]:
    secret = "msk_" + secrets.token_urlsafe(32)
    key_id = "mk_" + secrets.token_hex(10)
    credential = MerchantCredential(
        key_id=key_id,
        merchant_id=merchant.id,
        label=label,
        created_by=who.sub,
        secret_enc=fc.seal(secret, "merchant_credentials", "secret_enc", key_id) or "",
    )
    uow.session.add(credential)
    return credential, secret


async def credentials_of(uow: UnitOfWork, merchant_id: UUID) -> list[MerchantCredential]:
    rows = await uow.session.execute(
        select(MerchantCredential)
        .where(MerchantCredential.merchant_id == merchant_id)
        .order_by(col(MerchantCredential.created_at))
    )
    return list(rows.scalars())


async def revoke_credential(uow: UnitOfWork, merchant_id: UUID, key_id: str) -> MerchantCredential:
    credential = await uow.session.get(MerchantCredential, key_id)
    if credential is None or credential.merchant_id != merchant_id:
        raise not_found("credential", key_id)
    if credential.revoked_at is None:
        credential.revoked_at = utcnow()
    return credential


# --- housekeeping ---------------------------------------------------------------------------------------------


async def purge_expired(uow: UnitOfWork, *, now: datetime | None = None) -> tuple[int, int]:
    """Delete nonces past their window and codes a day past their expiry."""
    from services.points.models import MerchantNonce

    now = now or utcnow()
    nonces: sa.Table = table_of(MerchantNonce)
    n = await uow.session.execute(sa.delete(nonces).where(nonces.c.expires_at < now))
    c = await uow.session.execute(sa.delete(CODES).where(CODES.c.expires_at < now - timedelta(days=1)))
    return int(n.rowcount), int(c.rowcount)  # type: ignore[attr-defined]
