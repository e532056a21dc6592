"""Who calls the merchant API (``/points/merchant-api/...``, routes in ``views/merchant_api.py``): the
``merchant_caller`` dependency checks a signed request (``signing.py``: key, timestamp window, fresh nonce,
HMAC over the request) and names the merchant, rate-limited per merchant."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import Header, Request

from minsheng.platform import ratelimit
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import Message, _t
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.privacy import field_cipher
from minsheng.platform.service import Runtime
from minsheng.platform.sql import table_of
from services.points import config, signing
from services.points.models import (
    Merchant,
    MerchantCredential,
    MerchantNonce,
    MerchantStatus,
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
        secret = field_cipher(runtime.settings).open(row.secret_enc, "merchant_credentials", "secret_enc", key_id) or ""
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
