"""Field keys in the identity and notify services (issue 13): a lookup key of its own set on a running
installation keeps every WeChat user's account; ``rotate-data`` moves their sealed values to a new key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from minsheng.platform.keyrotation import rotate_service
from minsheng.platform.privacy import field_cipher
from minsheng.settings import Settings
from services.identity.app import SPEC as IDENTITY
from tests.conftest import embedded_settings
from tests.identity.helpers import bearer, wechat_login
from tests.support.client import running_system

K2 = base64.b64encode(bytes(range(32))).decode()
LOOKUP = base64.b64encode(bytes(range(100, 132))).decode()


def with_lookup_key(settings: Settings) -> Settings:
    return settings.model_copy(update={"field_lookup_key": SecretStr(LOOKUP)})


async def _identities(settings: Settings) -> list[Any]:
    async with running_system(settings, ["identity"]) as s:
        table = IDENTITY.metadata.tables["wechat_identities"]
        async with s.runtime("identity").db.engine.connect() as conn:
            return list((await conn.execute(sa.select(table))).all())


async def test_a_lookup_key_set_on_a_running_installation_keeps_every_wechat_account(tmp_path: Path) -> None:
    await _lookup_key_set_on_a_running_installation(embedded_settings(tmp_path))


@pytest.mark.integration
async def test_a_lookup_key_set_on_a_running_installation_keeps_every_wechat_account_on_postgresql(
    tmp_path: Path, pg_template: str
) -> None:
    await _lookup_key_set_on_a_running_installation(embedded_settings(tmp_path, database_url=pg_template))


async def _lookup_key_set_on_a_running_installation(settings: Settings) -> None:
    """Three WeChat users sign in (one binds a phone) before ``MINSHENG_FIELD_LOOKUP_KEY`` is set. After: one
    signs in again before ``rotate-data --rehash`` and is the same account (its row moves to the new hash on
    the way); the others sign in after the rehash, the same accounts too. PostgreSQL takes the one-statement
    login, SQLite the ORM path."""
    async with running_system(settings, ["identity"]) as s:
        before = {code: (await wechat_login(s, code))["account"]["id"] for code in ("li", "wu", "zheng")}
        tokens = await wechat_login(s, "wu.1")
        r = await s.client.post("/identity/wechat/phone", headers=bearer(tokens), json={"code": "phone-13812345678"})
        assert r.status_code == 200, r.text
    old, new = field_cipher(settings), field_cipher(with_lookup_key(settings))
    assert old.lookup_hash("x") != new.lookup_hash("x")

    async with running_system(with_lookup_key(settings), ["identity"]) as s:
        again = await wechat_login(s, "li.2")
        assert again["account"]["id"] == before["li"]
        db = s.runtime("identity").db
        stats = await rotate_service(db, IDENTITY.metadata, IDENTITY.sealed, new, batch=2, rehash=True)
        assert stats.rows == 3 and stats.rehashed == 6
        for code in ("wu.2", "zheng.2", "li.3"):
            assert (await wechat_login(s, code))["account"]["id"] == before[code.split(".")[0]]
        r = await s.client.get("/identity/me", headers=bearer(again))
        assert r.status_code == 200 and r.json()["id"] == before["li"]

    rows = await _identities(with_lookup_key(settings))
    assert len(rows) == 3  # nobody came back as a new account
    for row in rows:
        openid = new.decrypt(row.openid_enc)
        assert row.openid_hash == new.lookup_hash(openid) != old.lookup_hash(openid)
    phones = [row for row in rows if row.phone_enc is not None]
    assert len(phones) == 1 and phones[0].phone_hash == new.lookup_hash("13812345678")
