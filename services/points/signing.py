"""Merchant request signatures (HMAC-SHA256).

A signed request carries four headers::

    X-Minsheng-Key-Id:     the credential's public key id (mk_...)
    X-Minsheng-Timestamp:  Unix time in seconds; accepted within ±5 minutes of the server clock
    X-Minsheng-Nonce:      8–64 characters [A-Za-z0-9_-], never used before with this key
    X-Minsheng-Signature:  hex HMAC-SHA256(secret, canonical request)

The canonical request is five lines joined by ``\\n`` (no trailing newline)::

    METHOD                 upper case, e.g. POST
    PATH                   the full path as sent, with ``?query`` if any, e.g. /points/merchant-api/redemptions
    TIMESTAMP              the header value
    NONCE                  the header value
    SHA256(BODY)           lower-case hex of the raw body bytes (of the empty string for GET)

This module has no dependency on the service, so merchants may copy it (``client.py`` uses it).
"""

from __future__ import annotations

import hashlib
import hmac
import re

KEY_HEADER = "X-Minsheng-Key-Id"
TIMESTAMP_HEADER = "X-Minsheng-Timestamp"
NONCE_HEADER = "X-Minsheng-Nonce"
SIGNATURE_HEADER = "X-Minsheng-Signature"
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_request(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(
        secret.encode(), canonical_request(method, path, timestamp, nonce, body), hashlib.sha256
    ).hexdigest()


def verify(secret: str, signature: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bool:
    expected = sign(secret, method, path, timestamp, nonce, body)
    return hmac.compare_digest(expected, signature.strip().lower())
