"""Staff sign-in: passwords (argon2id), TOTP for admins and pii:reveal holders, lockout with backoff, no user
enumeration, forced change after an admin reset; accounts and grants (a BOLA matrix)."""

from __future__ import annotations

import time

import jwt

from services.identity import passwords
from tests.identity.helpers import (
    ADMIN_PASSWORD,
    admin,
    bearer,
    create_staff,
    outbox_events,
    staff_login,
    wechat_login,
)
from tests.support.client import System


async def _login(system: System, username: str, password: str, **extra: object) -> tuple[int, dict]:
    r = await system.client.post("/identity/staff/login", json={"username": username, "password": password, **extra})
    return r.status_code, r.json()


async def test_an_admin_signs_in_with_password_and_totp(system: System) -> None:
    tokens, secret = await admin(system)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"] and "admin" in claims["roles"] and claims["sid"]
    assert claims["exp"] - claims["iat"] == 900 and claims["aud"] == "minsheng"
    status, body = await _login(system, "admin", ADMIN_PASSWORD)
    assert status == 401 and body["code"] == "totp_required"
    status, body = await _login(system, "admin", ADMIN_PASSWORD, totp=passwords.totp(secret))
    assert status == 401 and body["code"] == "invalid_totp"  # the same code twice
    r = await system.client.get("/identity/accounts", headers=bearer(tokens))
    assert r.status_code == 200 and r.json()["items"][0]["username"] == "admin"


async def test_wrong_password_and_unknown_user_answer_alike(system: System) -> None:
    await admin(system)
    a = await system.client.post("/identity/staff/login", json={"username": "admin", "password": "nope-nope"})
    b = await system.client.post("/identity/staff/login", json={"username": "ghost", "password": "nope-nope"})
    assert a.status_code == b.status_code == 401
    strip = ("instance", "request_id")
    assert {k: v for k, v in a.json().items() if k not in strip} == {
        k: v for k, v in b.json().items() if k not in strip
    }


async def test_lockout_with_backoff_per_account_and_for_unknown_names(system: System) -> None:
    await admin(system)
    for name in ("admin", "ghost"):
        for _ in range(5):
            status, _body = await _login(system, name, "wrong-password")
            assert status == 401
        r = await system.client.post("/identity/staff/login", json={"username": name, "password": ADMIN_PASSWORD})
        assert r.status_code == 429 and r.json()["code"] == "too_many_attempts"
        assert 1 <= int(r.headers["retry-after"]) <= 30


async def test_an_admin_reset_forces_a_password_change(system: System) -> None:
    tokens, _ = await admin(system)
    staff_id, password = await create_staff(
        system, bearer(tokens), "chang.hong", ["grid_worker"], ["community:yunxing"]
    )
    session = await staff_login(system, "chang.hong", password)
    r = await system.client.post(f"/identity/accounts/{staff_id}/password-reset", headers=bearer(tokens))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    temporary = r.json()["temporary_password"]
    status, body = await _login(system, "chang.hong", password)
    assert status == 401
    status, body = await _login(system, "chang.hong", temporary)
    assert status == 403 and body["code"] == "password_change_required"
    r = await system.client.post("/identity/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 401  # the reset ended the old sessions
    r = await system.client.post(
        "/identity/staff/password",
        json={"username": "chang.hong", "current_password": temporary, "new_password": "short"},
    )
    assert r.status_code == 422 and r.json()["code"] == "weak_password"
    assert r.json()["detail"].startswith("新密码至少需要")  # 简体中文 unless the request asks for English
    r = await system.client.post(
        "/identity/staff/password",
        json={"username": "chang.hong", "current_password": temporary, "new_password": "short"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    assert r.json()["code"] == "weak_password" and r.json()["detail"].startswith("The new password needs at least")
    r = await system.client.post(
        "/identity/staff/password",
        json={"username": "chang.hong", "current_password": temporary, "new_password": "a-much-better-one-42"},
    )
    assert r.status_code == 204
    await staff_login(system, "chang.hong", "a-much-better-one-42")


async def test_a_totp_code_answered_with_a_password_change_is_spent(system: System) -> None:
    """The sign-in refused for a password change still uses up its TOTP code: it cannot be replayed."""
    tokens, _ = await admin(system)
    second, secret = await admin(system, "admin2")
    me = (await system.client.get("/identity/me", headers=bearer(second))).json()
    r = await system.client.post(f"/identity/accounts/{me['id']}/password-reset", headers=bearer(tokens))
    assert r.status_code == 200, r.text
    temporary = r.json()["temporary_password"]
    code = passwords.totp(secret, at=time.time() + passwords.TOTP_STEP)  # the next step: admin() used this one
    status, body = await _login(system, "admin2", temporary, totp=code)
    assert status == 403 and body["code"] == "password_change_required"
    status, body = await _login(system, "admin2", temporary, totp=code)
    assert status == 401 and body["code"] == "invalid_totp"


async def test_pii_reveal_holders_must_set_up_totp(system: System) -> None:
    tokens, _ = await admin(system)
    _, password = await create_staff(system, bearer(tokens), "auditor", ["staff"], ["*", "pii:reveal"])
    status, body = await _login(system, "auditor", password)
    assert status == 403 and body["code"] == "totp_enrollment_required"
    r = await system.client.post("/identity/staff/totp/setup", json={"username": "auditor", "password": password})
    assert r.status_code == 200 and r.json()["otpauth_uri"].startswith("otpauth://totp/")
    secret = r.json()["secret"]
    r = await system.client.post(
        "/identity/staff/totp/confirm",
        json={"username": "auditor", "password": password, "code": passwords.totp(secret)},
    )
    assert r.status_code == 204
    r = await system.client.post("/identity/staff/totp/setup", json={"username": "auditor", "password": password})
    assert r.status_code == 409
    status, body = await _login(system, "auditor", password)
    assert status == 401 and body["code"] == "totp_required"


async def test_disable_kills_refresh_tokens_and_sign_in_and_is_published(system: System) -> None:
    tokens, _ = await admin(system)
    staff_id, password = await create_staff(system, bearer(tokens), "worker", ["grid_worker"], ["community:yunxing"])
    session = await staff_login(system, "worker", password)
    r = await system.client.post(
        f"/identity/accounts/{staff_id}/disable", headers=bearer(tokens), json={"reason": "left the district"}
    )
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    r = await system.client.post("/identity/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 401
    status, _ = await _login(system, "worker", password)
    assert status == 401
    events = await outbox_events(system, "minsheng.identity.account.status_changed.v1")
    assert events[-1]["status"] == "disabled" and events[-1]["reason"] == "left the district"
    r = await system.client.post(
        f"/identity/accounts/{staff_id}/enable", headers=bearer(tokens), json={"reason": "back"}
    )
    assert r.status_code == 200
    await staff_login(system, "worker", password)


async def test_bola_matrix_for_accounts_and_grants(system: System) -> None:
    root, _ = await admin(system)
    lead_id, lead_pw = await create_staff(system, bearer(root), "lead", ["staff"], ["community:yunxing"])
    other_id, _ = await create_staff(system, bearer(root), "other", ["grid_worker"], ["community:dongyan"])
    lead = bearer(await staff_login(system, "lead", lead_pw))
    resident_tokens = await wechat_login(system, "resident-a")
    resident = bearer(resident_tokens)
    resident_id = resident_tokens["account"]["id"]
    stranger = bearer(await wechat_login(system, "resident-b"))

    # staff create grid workers within their own scope, and nothing wider
    r = await system.client.post(
        "/identity/accounts",
        headers=lead,
        json={"username": "gw.one", "roles": ["grid_worker"], "scopes": ["community:yunxing"], "reason": "new"},
    )
    assert r.status_code == 201, r.text
    gw_id = r.json()["account"]["id"]
    for roles, scopes in (
        (["grid_worker"], ["community:dongyan"]),
        (["admin"], ["community:yunxing"]),
        (["staff"], ["*"]),
        (["staff"], ["community:yunxing", "pii:reveal"]),
        (["merchant"], ["community:yunxing"]),
        (["grid_worker"], []),
    ):
        r = await system.client.post(
            "/identity/accounts",
            headers=lead,
            json={"username": "gw.bad", "roles": roles, "scopes": scopes, "reason": "x"},
        )
        assert r.status_code == 403, (roles, scopes, r.text)

    cases = [  # (who, method, path, body, expected)
        (resident, "GET", "/identity/accounts", None, 403),
        (lead, "GET", "/identity/accounts", None, 403),
        (resident, "GET", f"/identity/accounts/{resident_id}", None, 200),
        (stranger, "GET", f"/identity/accounts/{resident_id}", None, 404),
        (resident, "GET", f"/identity/accounts/{lead_id}", None, 404),
        (lead, "GET", f"/identity/accounts/{gw_id}", None, 200),
        (lead, "GET", f"/identity/accounts/{other_id}", None, 404),
        (lead, "GET", f"/identity/accounts/{other_id}/grants", None, 404),
        (resident, "GET", f"/identity/accounts/{gw_id}/grants", None, 403),
        (
            lead,
            "PUT",
            f"/identity/accounts/{other_id}/access",
            {"roles": ["grid_worker"], "scopes": ["community:yunxing"], "reason": "steal"},
            404,
        ),
        (
            lead,
            "PUT",
            f"/identity/accounts/{lead_id}/access",
            {"roles": ["staff"], "scopes": ["*"], "reason": "self"},
            403,
        ),
        (
            resident,
            "PUT",
            f"/identity/accounts/{resident_id}/access",
            {"roles": ["admin"], "scopes": ["*"], "reason": "self"},
            403,
        ),
        (lead, "POST", f"/identity/accounts/{gw_id}/disable", {"reason": "x"}, 403),
        (resident, "POST", f"/identity/accounts/{lead_id}/password-reset", None, 403),
        (lead, "POST", f"/identity/accounts/{gw_id}/password-reset", None, 403),
        (
            lead,
            "PUT",
            f"/identity/accounts/{gw_id}/access",
            {"roles": ["grid_worker", "staff"], "scopes": ["community:yunxing"], "reason": "promoted"},
            200,
        ),
    ]
    for who, method, path, body, expected in cases:
        r = await system.client.request(method, path, headers=who, json=body)
        assert r.status_code == expected, (method, path, body, r.status_code, r.text)

    grants = (await system.client.get(f"/identity/accounts/{gw_id}/grants", headers=lead)).json()["items"]
    assert [g["action"] for g in grants] == ["access_changed", "created"]
    assert grants[0]["actor"] == lead_id and grants[0]["reason"] == "promoted"
    first = (await system.client.get(f"/identity/accounts/{gw_id}/grants?limit=1", headers=lead)).json()
    assert [g["id"] for g in first["items"]] == [grants[0]["id"]] and first["next_cursor"]
    rest = await system.client.get(
        f"/identity/accounts/{gw_id}/grants", params={"limit": 1, "cursor": first["next_cursor"]}, headers=lead
    )
    assert [g["id"] for g in rest.json()["items"]] == [grants[1]["id"]] and rest.json()["next_cursor"] is None
    changed = await outbox_events(system, "minsheng.identity.account.access_changed.v1")
    assert changed[-1]["roles"] == ["grid_worker", "staff"] and changed[-1]["changed_by"] == lead_id


async def test_the_account_list_walks_page_by_page_in_the_order_of_one_page(system: System) -> None:
    tokens, _ = await admin(system)
    # Staff and residents interleaved in id order, so that a filter applied after the page was cut would show.
    await create_staff(system, bearer(tokens), "li.lei", ["staff"], ["community:yunxing"])
    for code in ("zhao", "qian"):
        await wechat_login(system, code)
    await create_staff(system, bearer(tokens), "han.mei", ["staff"], ["community:yunxing"])
    await wechat_login(system, "sun")

    async def listed(params: dict[str, str | int]) -> dict:
        r = await system.client.get("/identity/accounts", headers=bearer(tokens), params=params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    for filters in ({}, {"kind": "staff"}, {"kind": "wechat", "status": "active"}, {"role": "staff"}):
        everything = await listed({**filters, "limit": 200})
        assert len(everything["items"]) > 1 and everything["next_cursor"] is None, filters
        walked: list[dict] = []
        after: dict[str, str] = {}
        while True:
            page = await listed({**filters, "limit": 1, **after})
            walked += page["items"]
            if page["next_cursor"] is None:
                break
            after = {"cursor": page["next_cursor"]}
        assert walked == everything["items"], filters
    assert [a["username"] for a in (await listed({"role": "admin"}))["items"]] == ["admin"]
    # A page reads its accounts' credentials and WeChat identities together: each item is the account's own view.
    for item in (await listed({"limit": 200}))["items"]:
        one = await system.client.get(f"/identity/accounts/{item['id']}", headers=bearer(tokens))
        assert one.json() == item
        assert item["username" if item["kind"] == "staff" else "wechat_openid"]
