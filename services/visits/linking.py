"""Linking a resident's app account to their record by a **door code**: a grid worker (or staff) in scope
issues it for one resident, shows it at the door (a QR code in their app), and the resident's mini-program
scans it and sends it to ``POST /visits/me/link``. Typed ID numbers and phones are not proof of anything —
both leak widely — so they no longer link an account.

The code is stateless: the resident id and an expiry, authenticated with a keyed MAC (HMAC-SHA256, truncated
to 80 bits, a key derived for this purpose only). It links once in effect — a resident linked to one account
answers 409 to any other — and it expires (``DOOR_CODE_TTL``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from minsheng.platform.errors import Problem
from minsheng.settings import Settings

DOOR_CODE_TTL = timedelta(hours=72)
_MAC_BYTES = 10


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.secret.encode(), b"minsheng-visits-door-code-v1", hashlib.sha256).digest()


def issue(settings: Settings, resident_id: UUID, *, now: float | None = None) -> tuple[str, datetime]:
    expires = int((time.time() if now is None else now) + DOOR_CODE_TTL.total_seconds())
    payload = resident_id.bytes + expires.to_bytes(5, "big")
    mac = hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    code = base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")
    return "dc1." + code, datetime.fromtimestamp(expires, UTC)


def verify(settings: Settings, code: str) -> UUID:
    """The resident a valid, unexpired door code names; 422 for anything else (the same answer for a forged
    and an expired code)."""
    invalid = Problem(422, "door_code_invalid", "This door code is not valid", "Ask your grid worker for a new code.")
    if not code.startswith("dc1.") or len(code) > 80:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(code[4:] + "=" * (-len(code[4:]) % 4))
    except (ValueError, TypeError):
        raise invalid from None
    if len(raw) != 16 + 5 + _MAC_BYTES:
        raise invalid
    payload, mac = raw[:21], raw[21:]
    if not hmac.compare_digest(hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_MAC_BYTES], mac):
        raise invalid
    if int.from_bytes(payload[16:21], "big") < time.time():
        raise invalid
    return UUID(bytes=payload[:16])
