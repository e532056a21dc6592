"""Identity's sealed values, each bound to its place (table, column, row id): a value copied to another row or
column no longer decrypts. Values sealed before they were bound (issue 13: no associated data) still read,
until ``minsheng keys rotate-data`` rewrites them bound (the tables are declared in ``app.SPEC.sealed``)."""

from __future__ import annotations

from uuid import UUID

from minsheng.platform.privacy import FieldCipher

WECHAT = "wechat_identities"  # openid_enc, unionid_enc, session_key_enc, phone_enc; row id: the account id
STAFF = "staff_credentials"  # totp_secret_enc; the account id
KEYS = "signing_keys"  # private_key_enc; the kid
APP_TOKENS = "wechat_app_tokens"  # token_enc; the appid


def seal_wechat(cipher: FieldCipher, column: str, account_id: UUID, value: str | None) -> str | None:
    return cipher.seal(value, WECHAT, column, account_id)


def open_wechat(cipher: FieldCipher, column: str, account_id: UUID, stored: str | None) -> str | None:
    return cipher.open(stored, WECHAT, column, account_id, unbound=True)


def seal_totp(cipher: FieldCipher, account_id: UUID, secret: str) -> str | None:
    return cipher.seal(secret, STAFF, "totp_secret_enc", account_id)


def open_totp(cipher: FieldCipher, account_id: UUID, stored: str | None) -> str | None:
    return cipher.open(stored, STAFF, "totp_secret_enc", account_id, unbound=True)


def seal_signing_key(cipher: FieldCipher, kid: str, pem: str) -> str:
    sealed = cipher.seal(pem, KEYS, "private_key_enc", kid)
    assert sealed is not None
    return sealed


def open_signing_key(cipher: FieldCipher, kid: str, stored: str) -> str:
    pem = cipher.open(stored, KEYS, "private_key_enc", kid, unbound=True)
    assert pem is not None
    return pem


def seal_app_token(cipher: FieldCipher, appid: str, token: str) -> str:
    return cipher.seal(token, APP_TOKENS, "token_enc", appid) or ""


def open_app_token(cipher: FieldCipher, appid: str, stored: str) -> str | None:
    return cipher.open(stored, APP_TOKENS, "token_enc", appid, unbound=True)
