"""Personal data (PIPL): masking for responses, encryption at rest, keyed hashes for lookups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The permission (a token scope) to see personal data in clear, in every service; each such read is recorded.
PII_REVEAL_SCOPE = "pii:reveal"


def mask_phone(phone: str | None) -> str | None:
    """138****5678"""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_id_number(value: str | None) -> str | None:
    """110105********1234"""
    if not value:
        return value
    if len(value) < 8:
        return "*" * len(value)
    return f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"


def mask_name(name: str | None) -> str | None:
    """张** — first character only."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


class FieldCipher:
    """AES-256-GCM for sensitive fields. Stored as ``v1:<nonce+ciphertext, base64>``."""

    def __init__(self, key_b64: str) -> None:
        key = base64.b64decode(key_b64)
        if len(key) not in (16, 24, 32):
            raise ValueError("field encryption key must be 16, 24 or 32 bytes, base64-encoded")
        self._aead = AESGCM(key)
        self._hash_key = hashlib.sha256(b"minsheng-lookup:" + key).digest()

    def encrypt(self, plaintext: str | None) -> str | None:
        if plaintext is None:
            return None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return "v1:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        raw = base64.b64decode(stored.removeprefix("v1:"))
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()

    def lookup_hash(self, value: str | None) -> str | None:
        """A keyed hash (HMAC-SHA256) to find a record by an ID number without storing it in clear."""
        if value is None:
            return None
        return hmac.new(self._hash_key, value.strip().upper().encode(), hashlib.sha256).hexdigest()
