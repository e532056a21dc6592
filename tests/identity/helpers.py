"""Sign-in helpers for the identity tests."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from minsheng.platform.ids import uuid7
from services.identity import passwords
from services.identity.cli import create_admin
from tests.support.client import System

ADMIN_PASSWORD = "correct horse battery staple"


async def wechat_login(system: System, code: str = "zhao") -> dict[str, Any]:
    r = await system.client.post("/identity/wechat/login", json={"code": code})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def admin(system: System, username: str = "admin") -> tuple[dict[str, Any], str]:
    """A bootstrapped admin (as `minsheng admin create`) signed in with password + TOTP: tokens, TOTP secret."""
    out = await create_admin(system.settings, username, ADMIN_PASSWORD, "管理员")
    secret = out["totp_secret"]
    r = await system.client.post(
        "/identity/staff/login", json={"username": username, "password": ADMIN_PASSWORD, "totp": passwords.totp(secret)}
    )
    assert r.status_code == 200, r.text
    return r.json(), secret


async def create_staff(
    system: System, by: dict[str, str], username: str, roles: list[str], scopes: list[str]
) -> tuple[str, str]:
    """A staff account with its password changed from the temporary one: (account id, password)."""
    r = await system.client.post(
        "/identity/accounts",
        headers=by,
        json={"username": username, "roles": roles, "scopes": scopes, "reason": "test"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    password = f"pass-{uuid7().hex[-12:]}"
    r = await system.client.post(
        "/identity/staff/password",
        json={"username": username, "current_password": body["temporary_password"], "new_password": password},
    )
    assert r.status_code == 204, r.text
    return body["account"]["id"], password


async def staff_login(system: System, username: str, password: str, **extra: Any) -> dict[str, Any]:
    r = await system.client.post("/identity/staff/login", json={"username": username, "password": password, **extra})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def outbox_events(system: System, event_type: str) -> list[dict[str, Any]]:
    rt = system.runtime("identity")
    t = rt.db.tables.outbox
    async with rt.db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.payload).where(t.c.type == event_type))).all()
    return [json.loads(r.payload)["data"] for r in rows]
