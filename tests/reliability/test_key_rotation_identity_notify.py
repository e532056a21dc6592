"""Field keys in the identity and notify services (issue 13): a lookup key of its own set on a running
installation keeps every WeChat user's account; ``rotate-data`` moves their sealed values to a new key."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from minsheng.platform.db import Database
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.keyrotation import remaining, rotate_service
from minsheng.platform.privacy import FieldCipher, SealedColumns, field_cipher
from minsheng.settings import Settings
from services.identity import passwords
from services.identity.app import SPEC as IDENTITY
from services.notify.app import SPEC as NOTIFY
from tests.conftest import embedded_settings
from tests.identity.helpers import ADMIN_PASSWORD, admin, bearer, staff_login, wechat_login
from tests.support.client import running_system

K2 = base64.b64encode(bytes(range(32))).decode()
LOOKUP = base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The embedded configuration on SQLite, and again on PostgreSQL (fresh databases from ``pg_template``)."""
    if request.param == "postgresql":
        return embedded_settings(tmp_path, database_url=request.getfixturevalue("pg_template"))
    return embedded_settings(tmp_path)


def with_lookup_key(settings: Settings) -> Settings:
    return settings.model_copy(update={"field_lookup_key": SecretStr(LOOKUP)})


async def _identities(db: Database) -> list[Any]:
    table = IDENTITY.metadata.tables["wechat_identities"]
    async with db.engine.connect() as conn:
        return list((await conn.execute(sa.select(table))).all())


async def test_a_lookup_key_set_on_a_running_installation_keeps_every_wechat_account(settings: Settings) -> None:
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
        assert stats.by_table["wechat_identities"] == 3 and stats.rehashed == 6
        for code in ("wu.2", "zheng.2", "li.3"):
            assert (await wechat_login(s, code))["account"]["id"] == before[code.split(".")[0]]
        r = await s.client.get("/identity/me", headers=bearer(again))
        assert r.status_code == 200 and r.json()["id"] == before["li"]

    async with running_system(with_lookup_key(settings), ["identity"]) as s:
        rows = await _identities(s.runtime("identity").db)
    assert len(rows) == 3  # nobody came back as a new account
    for row in rows:
        openid = new.open(row.openid_enc, "wechat_identities", "openid_enc", row.account_id)
        assert row.openid_hash == new.lookup_hash(openid) != old.lookup_hash(openid)
    phones = [row for row in rows if row.phone_enc is not None]
    assert len(phones) == 1 and phones[0].phone_hash == new.lookup_hash("13812345678")


def rotated(settings: Settings) -> Settings:
    return settings.model_copy(update={"field_keys": {"k2": SecretStr(K2)}, "field_key_current": "k2"})


def _open(
    cipher: FieldCipher, entry: SealedColumns, column: str, row_id: Any, stored: str | None, *, bound: bool
) -> str | None:
    """As the service reads it; ``bound``: only if bound to its row (as rotation leaves every value)."""
    if not entry.aad:
        return cipher.decrypt(stored)
    return cipher.open(stored, entry.table, column, row_id, unbound=entry.unbound and not bound)


async def _sealed_values(
    db: Database, spec: Any, cipher: FieldCipher, *, under: str | None = None, bound: bool = False
) -> dict[Any, Any]:
    """Every sealed value of the service in clear, by (table, key, column); with ``under``, each must carry that
    key id (nested values too); ``bound``: each must be bound to its row (when its table binds them)."""
    out: dict[Any, Any] = {}
    async with db.engine.connect() as conn:
        for entry in spec.sealed:
            table = spec.metadata.tables[entry.table]
            query = sa.select(table)
            if entry.where is not None:
                query = query.where(entry.where(table))
            for row in (await conn.execute(query)).mappings():
                key = row[entry.key]
                for column in entry.columns:
                    stored = row[column]
                    if stored is not None:
                        assert under is None or cipher.key_id_of(stored) == under, (entry.table, column)
                    out[entry.table, key, column] = _open(cipher, entry, column, key, stored, bound=bound)
                for name, path in entry.nested:
                    inner = row[name]
                    for part in path:
                        inner = inner.get(part) if isinstance(inner, dict) else None
                    if inner is not None:
                        assert under is None or cipher.key_id_of(inner) == under, (entry.table, name)
                        out[entry.table, key, name] = cipher.decrypt(inner)
    return out


async def _unbind(db: Database, spec: Any, cipher: FieldCipher) -> None:
    """Every sealed value of the service as stored before the service bound them: without associated data."""
    async with db.engine.begin() as conn:
        for entry in spec.sealed:
            table = spec.metadata.tables[entry.table]
            for row in (await conn.execute(sa.select(table))).mappings().all():
                key = row[entry.key]
                values = {
                    c: cipher.encrypt(_open(cipher, entry, c, key, row[c], bound=False))
                    for c in entry.columns
                    if row[c] is not None
                }
                if values:
                    await conn.execute(sa.update(table).where(table.c[entry.key] == key).values(values))


async def _notify_rows(db: Database, cipher: FieldCipher) -> None:
    """A message with one delivery per channel (WeChat with its SMS fallback, SMS, inbox, a WeCom robot's scope
    in clear), a care contact and a duty shift's phone, sealed as notify sealed them before (no AAD)."""
    m, d, c = (NOTIFY.metadata.tables[t] for t in ("messages", "deliveries", "care_contacts"))
    message = uuid7()
    now = utcnow()
    phone = cipher.encrypt("13700001111")
    common = {"message_id": message, "recipient_key": "account:x", "next_attempt_at": now, "created_at": now}
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.insert(m).values(
                id=message, recipient_key="account:x", event_id="e1", event_type="t", rule="r", title="t", body="b"
            )
        )
        await conn.execute(
            sa.insert(d),
            [
                {
                    **common,
                    "id": uuid7(),
                    "channel": "wechat",
                    "address_enc": cipher.encrypt("oOpenid1"),
                    "request": {"template_id": "T", "fallback": {"address_enc": phone, "request": {"params": []}}},
                },
                {**common, "id": uuid7(), "channel": "sms", "address_enc": phone, "request": {"params": []}},
                {**common, "id": uuid7(), "channel": "inbox", "address_enc": None, "request": {}},
                {**common, "id": uuid7(), "channel": "wecom", "address_enc": "community:yunxing", "request": {}},
            ],
        )
        await conn.execute(sa.insert(c).values(id=uuid7(), alert_id="a1", member_id="m1", phone_enc=phone))
        roster = NOTIFY.metadata.tables["duty_roster"]
        await conn.execute(
            sa.insert(roster).values(
                id=uuid7(),
                community="yunxing",
                account_id="staff-1",
                starts_at=now,
                phone_enc=cipher.encrypt("13700002222"),
                phone_masked="137****2222",
                created_by="admin",
                created_at=now,
            )
        )


async def test_rotation_moves_identity_and_notify_values_to_the_new_key(settings: Settings) -> None:
    """Every identity value (openid, unionid, session key, phone, TOTP secret, signing key, app token) and every
    notify value (recipients, care contacts, delivery addresses and SMS fallbacks; not the WeCom scope) ends up
    under the new key id and reads back the same; the signing key, TOTP and WeChat sign-in still work."""
    old = field_cipher(settings)
    async with running_system(settings, ["identity", "notify"], demo=True) as s:
        root, secret = await admin(s)
        tokens = await wechat_login(s, "qian")
        r = await s.client.post("/identity/wechat/phone", headers=bearer(tokens), json={"code": "phone-13900001111"})
        assert r.status_code == 200, r.text
        await _notify_rows(s.runtime("notify").db, old)
        db = s.runtime("identity").db
        bound = await _sealed_values(db, IDENTITY, old, bound=True)  # new values are bound to their rows
        await _unbind(db, IDENTITY, old)  # and now as stored before they were: no associated data
        with pytest.raises(InvalidTag):
            await _sealed_values(db, IDENTITY, old, bound=True)
        assert await _sealed_values(db, IDENTITY, old) == bound

    new = field_cipher(rotated(settings))
    async with running_system(rotated(settings), ["identity", "notify"]) as s:
        # the values sealed without associated data still read: the signing key loaded, the phone shown
        r = await s.client.get("/identity/me", headers=bearer(tokens))
        assert r.status_code == 200 and r.json()["phone"] == "139****1111"
        assert (await wechat_login(s, "qian.1"))["account"]["phone"] == "139****1111"
        code = passwords.totp(secret, at=time.time() + passwords.TOTP_STEP)  # the next step: not a replay
        await staff_login(s, "admin", ADMIN_PASSWORD, totp=code)
        before = {}
        for name, spec in (("identity", IDENTITY), ("notify", NOTIFY)):
            db = s.runtime(name).db
            before[name] = await _sealed_values(db, spec, new)  # the keyring: k1 and k2
            stats = await rotate_service(db, spec.metadata, spec.sealed, new, batch=2)
            assert stats.rows > 0
            assert sum([await remaining(db, spec.metadata.tables[e.table], e, new) for e in spec.sealed]) == 0
            assert await _sealed_values(db, spec, new, under="k2", bound=True) == before[name]
            assert (await rotate_service(db, spec.metadata, spec.sealed, new)).rows == 0  # nothing left
        tables = {table for table, _, _ in before["identity"]}
        assert tables == {"wechat_identities", "staff_credentials", "signing_keys", "wechat_app_tokens"}
        assert {c for t, _, c in before["identity"] if t == "wechat_identities"} >= {"openid_enc", "phone_enc"}
        assert {t for t, _, _ in before["notify"]} == {"recipients", "care_contacts", "duty_roster", "deliveries"}
        assert ("deliveries", "request") in {(t, c) for t, _, c in before["notify"]}
        d = NOTIFY.metadata.tables["deliveries"]
        async with s.runtime("notify").db.engine.connect() as conn:
            scope = (await conn.execute(sa.select(d.c.address_enc).where(d.c.channel == "wecom"))).scalar_one()
        assert scope == "community:yunxing"  # in clear, left alone

    async with running_system(rotated(settings), ["identity"]) as s:  # the key store read under k2 alone
        r = await s.client.get("/identity/me", headers=bearer(tokens))  # signed before the rotation
        assert r.status_code == 200 and r.json()["phone"] == "139****1111"
        assert (await wechat_login(s, "qian.2"))["account"]["id"] == tokens["account"]["id"]
        credentials = IDENTITY.metadata.tables["staff_credentials"]
        async with s.runtime("identity").db.engine.begin() as conn:  # the code of a step already used, again
            await conn.execute(sa.update(credentials).values(totp_last_step=0))
        again = await staff_login(s, "admin", ADMIN_PASSWORD, totp=code)
        assert again["account"]["id"] == root["account"]["id"]


async def test_identity_values_are_bound_to_their_rows(tmp_path: Path) -> None:
    """What identity seals now is bound to its place: a phone copied to another account's row, or read as
    another column, no longer decrypts, nor without the associated data."""
    settings = embedded_settings(tmp_path)
    cipher = field_cipher(settings)
    async with running_system(settings, ["identity"]) as s:
        a = await wechat_login(s, "feng")
        b = await wechat_login(s, "chen")
        r = await s.client.post("/identity/wechat/phone", headers=bearer(a), json={"code": "phone-13811112222"})
        assert r.status_code == 200, r.text
        await admin(s)
        db = s.runtime("identity").db
        rows = {str(r.account_id): r for r in await _identities(db)}
        row_a, row_b = rows[a["account"]["id"]], rows[b["account"]["id"]]
        assert cipher.open(row_a.phone_enc, "wechat_identities", "phone_enc", row_a.account_id) == "13811112222"
        for stored, column, row_id in (
            (row_a.phone_enc, "phone_enc", row_b.account_id),  # another row
            (row_a.phone_enc, "openid_enc", row_a.account_id),  # another column
            (row_a.openid_enc, "openid_enc", row_b.account_id),
            (row_a.session_key_enc, "session_key_enc", row_b.account_id),
        ):
            with pytest.raises(InvalidTag):
                cipher.open(stored, "wechat_identities", column, row_id, unbound=True)
        with pytest.raises(InvalidTag):
            cipher.decrypt(row_a.phone_enc)  # no associated data
        # the TOTP secret, the signing key and the app token (fetched for the phone) too: all bound
        assert await _sealed_values(db, IDENTITY, cipher, bound=True)
        assert {t for t, _, _ in await _sealed_values(db, IDENTITY, cipher, bound=True)} == {
            "wechat_identities",
            "staff_credentials",
            "signing_keys",
            "wechat_app_tokens",
        }
