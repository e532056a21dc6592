"""A tiny client for the merchant API: signs every request (see ``signing.py``).

    import httpx
    from services.points.client import MerchantAuth

    auth = MerchantAuth("mk_...", "msk_...")
    with httpx.Client(base_url="https://minsheng.example", auth=auth) as client:
        r = client.post("/points/merchant-api/redemptions",
                        json={"code": "48213907", "offer_id": "..."},
                        headers={"Idempotency-Key": "till-3-000172"})

It works with ``httpx.Client`` and ``httpx.AsyncClient`` alike. ``signed_headers`` gives the headers for
any other HTTP library.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Generator

import httpx

from services.points.signing import KEY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

QR_PREFIX = "minsheng:redeem:"


def signed_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers for one request. ``path`` is the path as sent, including ``?query`` when there is one."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(16)
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: ts,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(secret, method, path, ts, nonce, body),
    }


def code_from_qr(payload: str) -> str:
    """The rider's QR code holds ``minsheng:redeem:<code>``; the digits alone work too."""
    return payload.removeprefix(QR_PREFIX).strip()


class MerchantAuth(httpx.Auth):
    """httpx auth that signs each request with a fresh timestamp and nonce."""

    requires_request_body = True

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.raw_path.decode()  # path and ?query exactly as they go on the wire
        request.headers.update(signed_headers(self.key_id, self.secret, request.method, path, request.content))
        yield request
