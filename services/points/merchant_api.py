"""The merchant API (``/points/merchant-api/...``): signed requests only (see ``signing.py``).

Merchants see their own offers, redemptions and statements — never a rider's name, phone or id, only a
per-merchant pseudonym (``rider_ref``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from minsheng.platform import csvfile, ratelimit
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import Message, _t
from minsheng.platform.idempotency import idempotent
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.inputs import MonthText
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import Runtime, UoW
from minsheng.platform.sql import table_of
from services.points import config, merchants, offers, redemptions, settlement, signing, statements
from services.points.models import (
    Merchant,
    MerchantCredential,
    MerchantNonce,
    MerchantPublic,
    MerchantStatus,
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

CREDENTIALS: sa.Table = table_of(MerchantCredential)
MERCHANTS: sa.Table = table_of(Merchant)
NONCES: sa.Table = table_of(MerchantNonce)


# The signature check's statements, built once (bound parameters; ``b_*`` in the UPDATE, whose column names
# SQLAlchemy reserves for the SET clause).
_CREDENTIAL = (
    sa.select(
        CREDENTIALS.c.secret_enc,
        CREDENTIALS.c.merchant_id,
        CREDENTIALS.c.last_used_at,
        MERCHANTS.c.status,
        MERCHANTS.c.void_window_minutes,
    )
    .join(MERCHANTS, MERCHANTS.c.id == CREDENTIALS.c.merchant_id)
    .where(CREDENTIALS.c.key_id == sa.bindparam("key_id"), CREDENTIALS.c.revoked_at.is_(None))
)
_INSERT_NONCE = sa.insert(NONCES)
_TOUCH_CREDENTIAL = (
    sa.update(CREDENTIALS)
    .where(CREDENTIALS.c.key_id == sa.bindparam("b_key_id"))
    .values(last_used_at=sa.bindparam("b_now", type_=CREDENTIALS.c.last_used_at.type))
)


def _unauthorized(code: str, detail: Message) -> Problem:
    return Problem(
        401,
        code,
        "Signature check failed",
        detail,
        headers={"WWW-Authenticate": 'HMAC-SHA256 realm="minsheng-merchant"'},
    )


# The signature headers' bound: generous, so that a plausible but wrong value is still a 401 that says what is
# wrong (a key id over 40, a nonce over 64 characters); only an absurd one is a 422.
HEADER_MAX = 200


def signed_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def merchant_caller(
    request: Request,
    runtime: Runtime,
    key_id: Annotated[
        str | None, Header(alias=signing.KEY_HEADER, description="Your API key id (mk_…)", max_length=HEADER_MAX)
    ] = None,
    timestamp: Annotated[
        str | None,
        Header(alias=signing.TIMESTAMP_HEADER, description="Unix seconds; within ±5 minutes", max_length=HEADER_MAX),
    ] = None,
    nonce: Annotated[
        str | None,
        Header(alias=signing.NONCE_HEADER, description="8-64 chars [A-Za-z0-9_-], never reused", max_length=HEADER_MAX),
    ] = None,
    signature: Annotated[
        str | None,
        Header(
            alias=signing.SIGNATURE_HEADER,
            max_length=HEADER_MAX,
            description="hex HMAC-SHA256(secret, METHOD\\nPATH[?QUERY]\\nTIMESTAMP\\nNONCE\\nSHA256(BODY))",
        ),
    ] = None,
) -> MerchantCaller:
    """Authenticate a signed merchant request: key, ±window timestamp, fresh nonce, HMAC over the request."""
    if not (key_id and timestamp and nonce and signature):
        raise _unauthorized(
            "signature_missing",
            _t(
                "Send {key}, {timestamp}, {nonce} and {signature}.",
                key=signing.KEY_HEADER,
                timestamp=signing.TIMESTAMP_HEADER,
                nonce=signing.NONCE_HEADER,
                signature=signing.SIGNATURE_HEADER,
            ),
        )
    settings = config.get()
    try:
        ts = int(timestamp)
    except ValueError:
        raise _unauthorized("signature_invalid", "The timestamp must be Unix seconds.") from None
    if abs(time.time() - ts) > settings.signature_window_seconds:
        raise _unauthorized(
            "signature_expired",
            _t(
                "The timestamp is more than {seconds} seconds from the server clock; check the clock and sign again.",
                seconds=settings.signature_window_seconds,
            ),
        )
    if not signing.NONCE_PATTERN.match(nonce) or len(key_id) > 40:
        raise _unauthorized("signature_invalid", "The nonce must be 8-64 characters of [A-Za-z0-9_-].")
    body = await request.body()
    now = utcnow()
    async with runtime.db.engine.connect() as conn:
        # Autocommit: the look-up needs no transaction and the nonce's INSERT commits on its own, which saves
        # the BEGIN and COMMIT round trips of a transaction.
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (await conn.execute(_CREDENTIAL, {"key_id": key_id})).first()
        if row is None:
            raise _unauthorized("unknown_key", "Unknown or revoked key id.")
        secret = (
            merchants.cipher(runtime.settings).open(row.secret_enc, "merchant_credentials", "secret_enc", key_id) or ""
        )
        if not signing.verify(secret, signature, request.method, signed_path(request), timestamp, nonce, body):
            raise _unauthorized("signature_invalid", "The signature does not match the request.")
        if row.status != MerchantStatus.active:
            raise Problem(403, "merchant_suspended", "Merchant suspended", "This merchant account is suspended.")
        try:
            # Committed at once, before the request's work: a nonce is spent even when the request then
            # fails, so no signed request can ever be replayed.
            await conn.execute(
                _INSERT_NONCE,
                {
                    "key_id": key_id,
                    "nonce": nonce,
                    "expires_at": now + timedelta(seconds=2 * settings.signature_window_seconds + 60),
                },
            )
            if row.last_used_at is None or as_utc(row.last_used_at) < now - timedelta(minutes=1):
                await conn.execute(_TOUCH_CREDENTIAL, {"b_key_id": key_id, "b_now": now})
        except sa.exc.IntegrityError:
            raise _unauthorized("nonce_reused", "This nonce was used before; sign with a new one.") from None
    ratelimit.check(f"merchant:{row.merchant_id}", settings.merchant_rate_per_second, settings.merchant_burst)
    return MerchantCaller(merchant_id=row.merchant_id, key_id=key_id, void_window_minutes=row.void_window_minutes)


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


async def statement_response(
    uow: UoW, runtime: Runtime, merchant_id: UUID, month: str, fmt: Literal["json", "csv"]
) -> Response:
    first = statements.parse_month(month)
    if fmt == "csv":
        text = await settlement.statement_csv(uow, runtime.settings, merchant_id, first)
        return Response(
            csvfile.encode(text),
            media_type=csvfile.MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="minsheng-points-{merchant_id}-{first:%Y-%m}.csv"'},
        )
    summary = await settlement.statement_summary(uow, merchant_id, first)
    return JSONResponse(summary.model_dump(mode="json"))
