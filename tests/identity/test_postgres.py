"""The identity service on PostgreSQL, over HTTP: refresh rotation, reuse detection (also under a race),
logout, disable, key rotation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from services.identity.cli import rotate_keys
from services.identity.models import SigningKeyRow
from tests.conftest import embedded_settings
from tests.identity.helpers import admin, bearer, create_staff, staff_login, wechat_login
from tests.support.client import System, running_system

pytestmark = pytest.mark.integration


async def test_refresh_rotation_reuse_and_logout_on_postgres(pg_system: System) -> None:
    system = pg_system
    first = await wechat_login(system, "pg-zhao")
    r = await system.client.post("/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    r = await system.client.post("/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "refresh_token_reused"
    r = await system.client.post("/identity/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401

    third = await wechat_login(system, "pg-zhao.2")
    assert (await system.client.post("/identity/logout", headers=bearer(third), json={})).status_code == 204
    r = await system.client.post("/identity/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 401


async def test_two_refreshes_racing_with_one_token_end_the_session(pg_system: System) -> None:
    system = pg_system
    tokens = await wechat_login(system, "pg-race")
    body = {"refresh_token": tokens["refresh_token"]}
    a, b = await asyncio.gather(
        system.client.post("/identity/refresh", json=body), system.client.post("/identity/refresh", json=body)
    )
    assert sorted([a.status_code, b.status_code]) == [200, 401]
    winner = a if a.status_code == 200 else b
    r = await system.client.post("/identity/refresh", json={"refresh_token": winner.json()["refresh_token"]})
    assert r.status_code == 401  # the reuse revoked the family, the winner's new token included


async def test_disable_on_postgres(pg_system: System) -> None:
    system = pg_system
    root, _ = await admin(system)
    staff_id, password = await create_staff(system, bearer(root), "pg.worker", ["grid_worker"], ["community:yunxing"])
    session = await staff_login(system, "pg.worker", password)
    r = await system.client.post(
        f"/identity/accounts/{staff_id}/disable", headers=bearer(root), json={"reason": "test"}
    )
    assert r.status_code == 200
    r = await system.client.post("/identity/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 401
    r = await system.client.post("/identity/staff/login", json={"username": "pg.worker", "password": password})
    assert r.status_code == 401


async def test_key_rotation_publishes_both_keys_then_retires_the_old_one(pg_system: System) -> None:
    system = pg_system
    before = await wechat_login(system, "pg-keys")
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

    rotated = await rotate_keys(system.settings)  # `minsheng keys rotate`, another process
    assert rotated["retiring"] == [old_kid] and rotated["retire_after_seconds"] >= 900
    new_kid = rotated["new_kid"]
    await system.runtime("identity").keyring.fetch(new_kid)  # what the reload job / an unknown kid does
    kids = [k["kid"] for k in (await system.client.get("/identity/.well-known/jwks.json")).json()["keys"]]
    assert kids == [old_kid, new_kid]

    after = await wechat_login(system, "pg-keys.2")
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    for tokens in (before, after):  # both verify during the overlap
        assert (await system.client.get("/issues/issues", headers=bearer(tokens))).status_code != 401

    # the overlap is over: the old key retires, unpublished and refused
    rt = system.runtime("identity")
    async with rt.db.sessionmaker() as s, s.begin():
        await s.execute(
            sa.update(SigningKeyRow)
            .where(SigningKeyRow.kid == old_kid)  # type: ignore[arg-type]
            .values(retire_at=utcnow() - timedelta(seconds=1))
        )
    rt.keyring.min_reload_seconds = 0
    await rt.keyring.fetch("reload")
    kids = [k["kid"] for k in (await system.client.get("/identity/.well-known/jwks.json")).json()["keys"]]
    assert kids == [new_kid]
    rt.verifier.forget()  # (a verified token is remembered until it expires: forget to check the key)
    r = await system.client.get("/issues/issues", headers=bearer(before))
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_a_returning_wechat_user_in_one_statement_on_postgres(pg_system: System) -> None:
    """The returning user's login (session-key update, sign-in record, refresh token in one statement) gives
    the same account, a working session and an audit row; a disabled account gets nothing written."""
    from services.identity.models import AuthEvent, RefreshToken, WechatIdentity

    system = pg_system
    first = await wechat_login(system, "pg-wang")
    account_id = first["account"]["id"]
    db = system.runtime("identity").db

    async def snapshot() -> tuple[list[str], int, str | None]:
        events, tokens, ident = (
            AuthEvent.__table__,  # type: ignore[attr-defined]
            RefreshToken.__table__,  # type: ignore[attr-defined]
            WechatIdentity.__table__,  # type: ignore[attr-defined]
        )
        async with db.engine.connect() as conn:
            outcomes = (
                await conn.execute(
                    sa.select(events.c.outcome)
                    .where(events.c.account_id == account_id, events.c.kind == "wechat_login")
                    .order_by(events.c.at)
                )
            ).scalars()
            count = (
                await conn.execute(sa.select(sa.func.count()).where(tokens.c.account_id == account_id))
            ).scalar_one()
            key = (await conn.execute(sa.select(ident.c.session_key_enc))).scalar_one()
        return list(outcomes), count, key

    _, _, key_before = await snapshot()
    again = await wechat_login(system, "pg-wang.2")
    assert again["account"]["id"] == account_id and again["account"]["roles"] == ["resident"]
    assert (
        jwt.decode(again["access_token"], options={"verify_signature": False})["sid"]
        != jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    )
    outcomes, tokens, key_after = await snapshot()
    assert outcomes == ["created", "ok"] and tokens == 2 and key_after != key_before
    r = await system.client.post("/identity/refresh", json={"refresh_token": again["refresh_token"]})
    assert r.status_code == 200 and r.json()["account"]["id"] == account_id

    root, _ = await admin(system)
    r = await system.client.post(f"/identity/accounts/{account_id}/disable", headers=bearer(root), json={"reason": "t"})
    assert r.status_code == 200
    r = await system.client.post("/identity/wechat/login", json={"code": "pg-wang.3"})
    assert r.status_code == 403 and r.json()["code"] == "account_disabled"
    outcomes, tokens_now, key_now = await snapshot()
    assert outcomes == ["created", "ok", "disabled"] and tokens_now == 3 and key_now == key_after  # 3: the refresh


async def test_the_one_statement_refresh_keeps_the_session_and_its_view_on_postgres(pg_system: System) -> None:
    """Refresh on PostgreSQL rotates in one statement: the same session (sid), the staff lifetime for staff,
    the account view as at sign-in; a disabled account's token is invalid, not 'reused'."""
    from services.identity import config

    system = pg_system
    root, _ = await admin(system)
    staff_id, password = await create_staff(system, bearer(root), "pg.refresh", ["grid_worker"], ["community:yunxing"])
    session = await staff_login(system, "pg.refresh", password)
    r = await system.client.post("/identity/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["account"] == session["account"] and fresh["account"]["username"] == "pg.refresh"
    assert fresh["refresh_expires_in"] == config.get().staff_refresh_ttl_seconds
    claims = [jwt.decode(t["access_token"], options={"verify_signature": False}) for t in (session, fresh)]
    assert claims[0]["sid"] == claims[1]["sid"] and claims[1]["sub"] == staff_id

    resident = await wechat_login(system, "pg-refresh-res")
    r = await system.client.post("/identity/refresh", json={"refresh_token": resident["refresh_token"]})
    assert r.status_code == 200 and r.json()["account"] == resident["account"]
    assert r.json()["refresh_expires_in"] == config.get().refresh_ttl_seconds

    r = await system.client.post(f"/identity/accounts/{staff_id}/disable", headers=bearer(root), json={"reason": "t"})
    assert r.status_code == 200
    r = await system.client.post("/identity/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "invalid_refresh_token"


async def test_failed_sign_ins_beyond_the_pool_size_are_answered_not_deadlocked(
    tmp_path: Path, pg_template: str
) -> None:
    """A failed sign-in records the failure and its audit row in transactions of their own: the request's own
    connection must be given back first, or more failing sign-ins at once than the pool holds would each wait
    for a second connection that never comes (a brute-force burst taking the identity service down)."""
    settings = embedded_settings(tmp_path, database_url=pg_template, db_pool_size=2)
    async with running_system(settings, ["identity"]) as system:
        await admin(system)

        async def wrong(i: int) -> int:
            r = await system.client.post(
                "/identity/staff/login", json={"username": f"nobody-{i}", "password": "not-the-password"}
            )
            return r.status_code

        async with asyncio.timeout(20):
            statuses = await asyncio.gather(*(wrong(i) for i in range(8)))
        assert set(statuses) <= {401, 429}, statuses
