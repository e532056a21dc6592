"""WeChat mini-program sign-in through the local stand-in over real HTTP: accounts, tokens every service
accepts, WeChat errors as clear problems, the verified phone (encrypted, masked), sessions."""

from __future__ import annotations

import sqlalchemy as sa

from minsheng.platform.errors import PROBLEM_JSON
from services.identity.models import WechatIdentity
from tests.identity.helpers import bearer, outbox_events, wechat_login
from tests.support.client import System

# One authenticated read per service: a token the identity issued works in all five.
READS = [
    "/identity/me",
    "/visits/residents/me",
    "/issues/issues?mine=true",
    "/points/riders/me/balance",
    "/canteen/canteens",
]


async def test_first_login_creates_a_resident_account_whose_token_every_service_accepts(system: System) -> None:
    tokens = await wechat_login(system, "zhao")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    account = tokens["account"]
    assert account["kind"] == "wechat" and account["roles"] == ["resident"]
    assert "****" in account["wechat_openid"] and account["phone"] is None
    for path in READS:
        r = await system.client.get(path, headers=bearer(tokens))
        assert r.status_code != 401, (path, r.status_code, r.text)  # authenticated; roles are per service

    again = await wechat_login(system, "zhao.2")  # the same person, a new code
    assert again["account"]["id"] == account["id"]
    other = await wechat_login(system, "qian")
    assert other["account"]["id"] != account["id"]

    created = await outbox_events(system, "minsheng.identity.account.created.v1")
    assert [e["account_id"] for e in created] == [account["id"], other["account"]["id"]]
    contact = await outbox_events(system, "minsheng.identity.account.contact_changed.v1")
    assert contact[0]["wechat_openid"].startswith("o") and "****" not in contact[0]["wechat_openid"]


async def test_the_session_key_and_openid_are_encrypted_at_rest(system: System) -> None:
    tokens = await wechat_login(system, "sun")
    rt = system.runtime("identity")
    async with rt.db.sessionmaker() as s:
        row = (await s.execute(sa.select(WechatIdentity))).scalar_one()
    assert row.openid_enc.startswith("v2:") and row.session_key_enc and row.session_key_enc.startswith("v2:")
    assert "session_key" not in str(tokens)


async def test_wechat_errors_become_clear_problems(system: System) -> None:
    expected = {
        "invalid-x": (401, "wechat_code_invalid"),
        "risky-x": (403, "wechat_user_blocked"),
        "throttled-x": (429, "wechat_rate_limited"),
        "busy-x": (503, "wechat_busy"),
    }
    for code, (status, problem) in expected.items():
        r = await system.client.post("/identity/wechat/login", json={"code": code})
        assert r.status_code == status and r.json()["code"] == problem, r.text
        assert r.headers["content-type"] == PROBLEM_JSON
        if status in (429, 503):
            assert int(r.headers["retry-after"]) > 0
    await wechat_login(system, "li.once")
    r = await system.client.post("/identity/wechat/login", json={"code": "li.once"})  # codes are single use
    assert r.status_code == 401 and r.json()["code"] == "wechat_code_invalid"
    r = await system.client.post("/identity/wechat/login", json={"code": "bad code!"})
    assert r.status_code == 422


async def test_the_verified_phone_is_bound_encrypted_and_masked(system: System) -> None:
    tokens = await wechat_login(system, "zhou")
    r = await system.client.post("/identity/wechat/phone", headers=bearer(tokens), json={"code": "phone-13812345678"})
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "138****5678"
    me = (await system.client.get("/identity/me", headers=bearer(tokens))).json()
    assert me["phone"] == "138****5678"
    rt = system.runtime("identity")
    async with rt.db.sessionmaker() as s:
        row = (await s.execute(sa.select(WechatIdentity))).scalar_one()
    assert row.phone_enc and "13812345678" not in row.phone_enc and row.phone_hash
    contact = await outbox_events(system, "minsheng.identity.account.contact_changed.v1")
    assert contact[-1]["phone"] == "13812345678"  # the event carries it (declared personal data) for notify

    # A second binding reuses the cached app access token (one stable_token call for both).
    r = await system.client.post("/identity/wechat/phone", headers=bearer(tokens), json={"code": "p2"})
    assert r.status_code == 200
    assert rt.state["standin"].app.state.calls["stable_token"] == 1
    r = await system.client.post("/identity/wechat/phone", headers=bearer(tokens), json={"code": "invalid-p"})
    assert r.status_code == 401 and r.json()["code"] == "wechat_code_invalid"
    staff = system.auth("staff", sub="0193c0de-0000-7000-8000-000000000001")
    r = await system.client.post("/identity/wechat/phone", headers=staff, json={"code": "p3"})
    assert r.status_code == 409


async def test_refresh_rotates_and_a_reused_token_ends_the_session(system: System) -> None:
    first = await wechat_login(system, "wu")
    r = await system.client.post("/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["account"]["id"] == first["account"]["id"]

    # the old one again: reuse → the whole family (including the new token) is revoked
    r = await system.client.post("/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "refresh_token_reused"
    r = await system.client.post("/identity/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "invalid_refresh_token"

    r = await system.client.post("/identity/refresh", json={"refresh_token": "rt_" + "x" * 40})
    assert r.status_code == 401


async def test_logout_ends_the_session_and_only_that_one(system: System) -> None:
    phone_a = await wechat_login(system, "zheng.a")
    phone_b = await wechat_login(system, "zheng.b")  # the same person on a second device
    r = await system.client.post("/identity/logout", headers=bearer(phone_a), json={})
    assert r.status_code == 204
    r = await system.client.post("/identity/refresh", json={"refresh_token": phone_a["refresh_token"]})
    assert r.status_code == 401
    r = await system.client.post("/identity/refresh", json={"refresh_token": phone_b["refresh_token"]})
    assert r.status_code == 200
    r = await system.client.post("/identity/logout", headers=bearer(r.json()), json={"everywhere": True})
    assert r.status_code == 204
    for t in (phone_b,):
        r = await system.client.post("/identity/refresh", json={"refresh_token": t["refresh_token"]})
        assert r.status_code == 401
