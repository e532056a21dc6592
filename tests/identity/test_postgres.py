"""The identity service on PostgreSQL, over HTTP: refresh rotation, reuse detection (also under a race),
logout, disable, key rotation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from services.identity.cli import rotate_keys
from services.identity.models import SigningKeyRow
from tests.identity.helpers import admin, bearer, create_staff, staff_login, wechat_login
from tests.support.client import System

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
