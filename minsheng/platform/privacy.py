"""Personal data (PIPL): masking for responses, encryption at rest, keyed hashes for lookups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AfterValidator

from minsheng.settings import Settings

if TYPE_CHECKING:
    from minsheng.platform.db import Database

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


# A phone as responses show it: masked, whatever the model was built from.
MaskedPhone = Annotated[str | None, AfterValidator(mask_phone)]


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


@dataclass(frozen=True)
class SealedColumns:
    """The encrypted columns of one table, declared in the service's spec (``ServiceSpec.sealed``) so that
    ``minsheng keys rotate-data`` can re-encrypt them under the current key (and re-hash the lookup hashes).
    ``hashes`` pairs a lookup-hash column with the sealed column it is the hash of; ``aad`` says whether the
    values are bound to ``aad_of(table, column, <key column>)``; ``unbound``, that some were sealed before the
    table bound them (no associated data, ``FieldCipher.open(unbound=True)``): rotation reads them so and
    rewrites them bound. ``where`` (given the table) selects the rows
    that hold sealed values, when others hold something else in the same column (notify's WeCom robot scope in
    clear); ``nested`` names a JSON column and the key path to a sealed value inside it (a delivery's SMS
    fallback phone), sealed like ``columns`` but never bound (it is a copy, sealed before the row existed)."""

    table: str
    columns: tuple[str, ...]
    hashes: tuple[tuple[str, str], ...] = ()
    key: str = "id"
    aad: bool = True
    unbound: bool = False
    where: Callable[[Any], Any] | None = None
    nested: tuple[tuple[str, tuple[str, ...]], ...] = ()


KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
LEGACY_PREFIX = "v1:"
PREFIX = "v2:"


def _key(key_b64: str) -> bytes:
    key = base64.b64decode(key_b64)
    if len(key) not in (16, 24, 32):
        raise ValueError("field encryption key must be 16, 24 or 32 bytes, base64-encoded")
    return key


def aad_of(table: str, column: str, row_id: object) -> bytes:
    """The associated data that binds a ciphertext to its place: a value copied to another row or column (or
    another table) no longer decrypts."""
    return f"{table}\x1f{column}\x1f{row_id}".encode()


class FieldCipher:
    """AES-256-GCM for sensitive fields, with a keyring, and a keyed lookup hash with a key of its own.

    Stored as ``v2:<key id>:<base64(nonce + ciphertext)>``; the associated data is ``aad_of(table, column, row
    id)`` when the caller gives ``aad=`` (every service column does). Values in the old format
    ``v1:<base64>`` (no key id, no associated data) were sealed with the original key and stay readable;
    ``minsheng keys rotate-data`` rewrites them.

    ``FieldCipher(key)`` alone is a keyring of one key (id ``legacy_key_id``); ``keys`` adds others by id,
    ``current`` says which one seals new values. The lookup hash (HMAC-SHA256) uses ``lookup_key`` when given;
    without one it keeps the original derivation from the *original* key (``legacy_key_id``), never from the
    current key, so rotating the encryption key leaves every stored hash valid."""

    def __init__(
        self,
        key_b64: str,
        *,
        keys: Mapping[str, str] | None = None,
        current: str | None = None,
        lookup_key_b64: str | None = None,
        legacy_key_id: str = "k1",
    ) -> None:
        ring = {legacy_key_id: _key(key_b64)}
        for kid, value in (keys or {}).items():
            if not KEY_ID.fullmatch(kid):
                raise ValueError(f"field key id {kid!r}: letters, digits, _ and - (at most 32)")
            ring[kid] = _key(value)
        self.current = current or legacy_key_id
        if self.current not in ring:
            raise ValueError(f"the current field key id {self.current!r} is not in the keyring {sorted(ring)}")
        self.legacy_key_id = legacy_key_id
        self._aeads = {kid: AESGCM(k) for kid, k in ring.items()}
        self._current_aead = self._aeads[self.current]
        self._prefix = f"{PREFIX}{self.current}:"
        self._legacy_hash_key = hashlib.sha256(b"minsheng-lookup:" + ring[legacy_key_id]).digest()
        if lookup_key_b64:
            self._hash_key = base64.b64decode(lookup_key_b64)
            if len(self._hash_key) < 16:
                raise ValueError("the lookup-hash key must be at least 16 bytes, base64-encoded")
        else:
            self._hash_key = self._legacy_hash_key

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._aeads)

    def encrypt(self, plaintext: str | None, *, aad: bytes | None = None) -> str | None:
        if plaintext is None:
            return None
        nonce = os.urandom(12)
        sealed = self._current_aead.encrypt(nonce, plaintext.encode(), aad)
        return self._prefix + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str | None, *, aad: bytes | None = None) -> str | None:
        if stored is None:
            return None
        if stored.startswith(PREFIX):
            kid, _, body = stored[len(PREFIX) :].partition(":")
            aead = self._aeads.get(kid)
            if aead is None:
                raise KeyError(f"field key {kid!r} is not configured (MINSHENG_FIELD_KEYS)")
            raw = base64.b64decode(body)
            return aead.decrypt(raw[:12], raw[12:], aad).decode()
        raw = base64.b64decode(stored.removeprefix(LEGACY_PREFIX))  # v1: the original key, no associated data
        return self._aeads[self.legacy_key_id].decrypt(raw[:12], raw[12:], None).decode()

    def key_id_of(self, stored: str | None) -> str | None:
        """The key id a stored value is sealed with (``v1`` values: ``None``, they need rewriting)."""
        if stored is None or not stored.startswith(PREFIX):
            return None
        return stored[len(PREFIX) :].partition(":")[0]

    def is_current(self, stored: str | None) -> bool:
        return stored is None or stored.startswith(self._prefix)

    def reseal(self, stored: str | None, *, aad: bytes | None) -> str | None:
        """The same value under the current key and ``aad`` (v1 values gain their associated data)."""
        return self.encrypt(self.decrypt(stored, aad=aad if stored and stored.startswith(PREFIX) else None), aad=aad)

    def lookup_hash(self, value: str | None) -> str | None:
        """A keyed hash (HMAC-SHA256) to find a record by an ID number or phone without storing it in clear."""
        if value is None:
            return None
        return hmac.new(self._hash_key, value.strip().upper().encode(), hashlib.sha256).hexdigest()

    def seal(self, value: str | None, table: str, column: str, row_id: object) -> str | None:
        """Encrypt the value of ``table.column`` of row ``row_id`` (bound to that place)."""
        return self.encrypt(value, aad=aad_of(table, column, row_id))

    def open(self, stored: str | None, table: str, column: str, row_id: object, *, unbound: bool = False) -> str | None:
        """The value of ``table.column`` of row ``row_id``. ``unbound``: the column also holds values sealed
        before it was bound to its place (``v2:`` without associated data: identity and notify until issue 13),
        read as they are until ``rotate-data`` rewrites them bound; a value bound elsewhere still fails."""
        data = aad_of(table, column, row_id)
        if not unbound or stored is None or not stored.startswith(PREFIX):
            return self.decrypt(stored, aad=data)
        try:
            return self.decrypt(stored, aad=data)
        except InvalidTag:
            return self.decrypt(stored)

    def lookup_hashes(self, value: str) -> list[str]:
        """Every hash a stored row may carry for ``value``: the current lookup key's and, while a lookup key of
        its own has been set but ``rotate-data --rehash`` has not finished, the original derivation's. Use
        with ``IN`` to find a row; store ``lookup_hash``."""
        normal = value.strip().upper().encode()
        hashes = [hmac.new(self._hash_key, normal, hashlib.sha256).hexdigest()]
        if self._hash_key != self._legacy_hash_key:
            hashes.append(hmac.new(self._legacy_hash_key, normal, hashlib.sha256).hexdigest())
        return hashes

    @classmethod
    def from_settings(cls, settings: Any) -> FieldCipher:
        return field_cipher(settings)


def field_cipher(settings: Any) -> FieldCipher:
    """The cipher of ``settings`` (the keyring, the current key id, the lookup key), built once per keyring."""
    key = settings.field_encryption_key
    assert key is not None, "MINSHENG_FIELD_ENCRYPTION_KEY"
    keys = tuple(
        sorted(
            (k, v.get_secret_value() if hasattr(v, "get_secret_value") else str(v))
            for k, v in (settings.field_keys or {}).items()
        )
    )
    lookup = settings.field_lookup_key.get_secret_value() if settings.field_lookup_key else None
    return _cipher(key.get_secret_value(), keys, settings.field_key_current, lookup, settings.field_key_id)


_RUNNING: weakref.WeakKeyDictionary[Database, Settings] = weakref.WeakKeyDictionary()


def remember_settings(db: Database, settings: Settings) -> None:
    """Tie a running service's settings to its database (``ServiceRuntime`` does it), for :func:`cipher_for`."""
    _RUNNING[db] = settings


def cipher_for(db: Database) -> FieldCipher:
    """The field cipher of the service running on ``db``, for code that holds only a unit of work (event
    handlers); outside a running service (a CLI replaying dead letters) the one of the environment's settings.
    Views take it as the ``Cipher`` route parameter instead."""
    settings = _RUNNING.get(db)
    return field_cipher(settings if settings is not None else Settings())


@lru_cache(maxsize=8)
def _cipher(
    key: str, keys: tuple[tuple[str, str], ...], current: str | None, lookup: str | None, legacy_id: str
) -> FieldCipher:
    return FieldCipher(key, keys=dict(keys), current=current, lookup_key_b64=lookup, legacy_key_id=legacy_id)


def seal_phone(
    cipher: FieldCipher, phone: str | None, table: str, row_id: object, column: str = "phone"
) -> tuple[str | None, str | None, str | None]:
    """A phone as stored: ``(masked, ciphertext, lookup hash)`` for the columns ``phone`` (only ever the
    masked form, ``138****5678``), ``phone_enc`` and ``phone_hash``."""
    if phone is None or not phone.strip():
        return None, None, None
    number = phone.strip()
    return (
        mask_phone(number),
        cipher.encrypt(number, aad=aad_of(table, f"{column}_enc", row_id)),
        cipher.lookup_hash(number),
    )


def seal_phone_on(obj: Any, cipher: FieldCipher, attr: str = "phone") -> None:
    """Store ``obj.<attr>`` as the three columns ``<attr>`` (masked), ``<attr>_enc`` and ``<attr>_hash``, if it
    holds a phone in clear (set by a create or an update); a value already sealed is left alone."""
    value = getattr(obj, attr)
    if (
        value is not None
        and getattr(obj, f"{attr}_enc", None) is not None
        and value == mask_phone(value)
        and "*" in value
    ):
        return  # masked already: sealed
    masked, enc, digest = seal_phone(cipher, value, obj.__tablename__, obj.id, attr)
    setattr(obj, attr, masked)
    setattr(obj, f"{attr}_enc", enc)
    setattr(obj, f"{attr}_hash", digest)


def seal_phone_row(row: dict[str, Any], cipher: FieldCipher, table: str, attr: str = "phone") -> dict[str, Any]:
    """The same for a Core insert's row (it must carry its ``id``)."""
    masked, enc, digest = seal_phone(cipher, row.get(attr), table, row["id"], attr)
    row.update({attr: masked, f"{attr}_enc": enc, f"{attr}_hash": digest})
    return row


def open_phone(obj: Any, cipher: FieldCipher, attr: str = "phone") -> str | None:
    """The phone in clear (for a reveal that is audited, or a comparison)."""
    return cipher.decrypt(getattr(obj, f"{attr}_enc"), aad=aad_of(obj.__tablename__, f"{attr}_enc", obj.id))
