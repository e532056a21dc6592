"""Staff secrets: argon2id password hashes (argon2-cffi) and TOTP second factors (RFC 6238, hand-rolled:
HMAC-SHA1, 30-second steps, 6 digits, ±1 step of clock drift, each step accepted once)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from minsheng.platform.i18n import Text, _t
from services.identity import config

TOTP_STEP = 30
TOTP_DIGITS = 6


@functools.cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher() -> PasswordHasher:
    c = config.get()
    return _hasher(c.argon2_time_cost, c.argon2_memory_kib, c.argon2_parallelism)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not there is an account: an unknown name is checked against a dummy hash."""
    h = hasher()
    try:
        return h.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return hasher().check_needs_rehash(stored)


@functools.cache
def _dummy_hash() -> str:
    return hasher().hash(secrets.token_urlsafe(16))


def temporary_password() -> str:
    """Shown once to the admin who resets or creates an account; must be changed at the first sign-in."""
    return secrets.token_urlsafe(12)


def check_password_policy(password: str, username: str) -> Text | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < config.get().password_min_length:
        return _t("needs at least {min_length} characters", min_length=config.get().password_min_length)
    if username.lower() in password.lower():
        return _t("must not contain the user name")
    if len(set(password)) < 4:
        return _t("has too few distinct characters")
    return None


# --- TOTP -----------------------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret_b32: str) -> bytes:
    return base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8), casefold=True)


def hotp(key: bytes, counter: int, digits: int = TOTP_DIGITS, digest: str = "sha1") -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return f"{code:0{digits}d}"


def totp(secret_b32: str, at: float | None = None) -> str:
    return hotp(_key(secret_b32), int((time.time() if at is None else at) // TOTP_STEP))


def verify_totp(secret_b32: str, code: str, last_step: int, at: float | None = None) -> int | None:
    """The matching time step (later than ``last_step``, so a code is used once), or None."""
    step = int((time.time() if at is None else at) // TOTP_STEP)
    key = _key(secret_b32)
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and hmac.compare_digest(hotp(key, candidate), code):
            return candidate
    return None


def otpauth_uri(secret_b32: str, username: str) -> str:
    issuer = config.get().totp_issuer
    query = urlencode(
        {"secret": secret_b32, "issuer": issuer, "algorithm": "SHA1", "digits": TOTP_DIGITS, "period": TOTP_STEP}
    )
    return f"otpauth://totp/{quote(issuer)}:{quote(username)}?{query}"


def address_hash(address: str | None) -> str | None:
    """Source addresses are kept only as a truncated hash (enough to see a pattern, not to find a person)."""
    if not address:
        return None
    return hashlib.sha256(b"minsheng-addr:" + address.encode()).hexdigest()[:32]
