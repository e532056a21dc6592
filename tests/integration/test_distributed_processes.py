"""Five separate ``minsheng serve`` processes over PostgreSQL and the broker — exactly how the distributed
mode runs, minus the containers: the fire flow, and sign-in with tokens the other four verify against the
identity's JWKS over HTTP (refresh rotation, reuse, logout, disable, key rotation); and the fire flow with two
services each split into web, relay and consumer processes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from minsheng.settings import Settings
from services.identity import passwords
from services.identity.cli import create_admin, rotate_keys
from tests.support.infra import LocalBroker, becomes, eventually
from tests.support.processes import (
    ServiceProcess,
    dev_token,
    distributed_env,
    process_settings,
    services_running,
    start_service,
    stop,
    wait_ready,
)
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


async def test_fire_flow_and_sign_in_across_five_processes(
    pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    # Fast key reloads and JWKS refetches, so the rotation below shows within seconds.
    env = distributed_env(
        pg_template,
        kafka[0],
        MINSHENG_IDENTITY_KEY_RELOAD_SECONDS="1",
        MINSHENG_JWKS_MIN_REFETCH_SECONDS="1",
        MINSHENG_IDENTITY_ARGON2_MEMORY_KIB="8192",
    )
    settings = process_settings(env)

    with services_running(["identity", "visits", "issues", "points", "canteen"], env) as procs:
        async with httpx.AsyncClient(timeout=10) as http:
            await _fire_flow(http, settings, points=procs["points"].url, issues=procs["issues"].url)
            await _sign_in_across_processes(http, procs, settings)


async def _fire_flow(http: httpx.AsyncClient, settings: Settings, *, points: str, issues: str) -> None:
    """A rider reports a fire to points; issues makes it an urgent issue; staff verify it there; the rider is
    paid 20 points and the report shows the issue."""
    rider = {"Authorization": f"Bearer {dev_token(settings, 'rider-fan', ['rider'])}"}
    staff = {"Authorization": f"Bearer {dev_token(settings, 'staff-1', ['staff'], ['community:yunxing'])}"}
    r = await http.post(
        f"{points}/points/riders",
        headers=rider,
        json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678"},
    )
    assert r.status_code == 201, r.text
    report = (await http.post(f"{points}/points/hazard-reports", headers=rider, json=FIRE)).json()

    async def issue_for_report() -> dict | None:
        items = (await http.get(f"{issues}/issues/issues", headers=staff)).json()["items"]
        return next((i for i in items if i["origin_id"] == report["id"]), None)

    issue = await eventually(issue_for_report, within=45)
    assert issue["urgent"] is True and issue["channel"] == "rider"
    r = await http.post(f"{issues}/issues/issues/{issue['id']}/verify", headers=staff)
    assert r.status_code == 200, r.text

    async def balance() -> int:
        body = (await http.get(f"{points}/points/riders/me/balance", headers=rider)).json()
        return body["balance"]  # type: ignore[no-any-return]

    await becomes(balance, 20, within=45)
    mine = (await http.get(f"{points}/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "verified" and mine["issue_id"] == issue["id"]


async def _sign_in_across_processes(
    http: httpx.AsyncClient, procs: dict[str, ServiceProcess], settings: Settings
) -> None:
    identity = procs["identity"].url
    reads = {
        "visits": "/visits/residents/me",
        "issues": "/issues/issues",
        "points": "/points/riders/me/balance",
        "canteen": "/canteen/canteens",
        "identity": "/identity/me",
    }

    async def accepted_everywhere(tokens: dict[str, Any]) -> None:
        for name, path in reads.items():
            r = await http.get(procs[name].url + path, headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert r.status_code != 401, (name, r.text)

    async def login(code: str) -> dict[str, Any]:
        r = await http.post(f"{identity}/identity/wechat/login", json={"code": code})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    first = await login("proc-zhao")
    await accepted_everywhere(first)
    old = jwt.encode(
        {"sub": "x", "roles": ["admin"], "scope": "*", "iss": "minsheng", "exp": 2_000_000_000},
        "test-secret-for-distributed-processes",
        algorithm="HS256",
    )
    for name, path in reads.items():
        r = await http.get(procs[name].url + path, headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401, (name, r.text)

    # refresh rotates; the old refresh token again ends the session; logout ends another
    r = await http.post(f"{identity}/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    r = await http.post(f"{identity}/identity/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "refresh_token_reused"
    r = await http.post(f"{identity}/identity/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401
    third = await login("proc-zhao.2")
    r = await http.post(
        f"{identity}/identity/logout", json={}, headers={"Authorization": f"Bearer {third['access_token']}"}
    )
    assert r.status_code == 204
    assert (
        await http.post(f"{identity}/identity/refresh", json={"refresh_token": third["refresh_token"]})
    ).status_code == 401

    # an admin (bootstrapped as `minsheng admin create` does) disables the resident: the session dies
    out = await create_admin(settings, "proc-admin", "proc admin password 1", None)
    r = await http.post(
        f"{identity}/identity/staff/login",
        json={
            "username": "proc-admin",
            "password": "proc admin password 1",
            "totp": passwords.totp(out["totp_secret"]),
        },
    )
    assert r.status_code == 200, r.text
    root = {"Authorization": f"Bearer {r.json()['access_token']}"}
    fourth = await login("proc-zhao.3")
    r = await http.post(
        f"{identity}/identity/accounts/{fourth['account']['id']}/disable", headers=root, json={"reason": "test"}
    )
    assert r.status_code == 200
    assert (
        await http.post(f"{identity}/identity/refresh", json={"refresh_token": fourth["refresh_token"]})
    ).status_code == 401
    assert (await http.post(f"{identity}/identity/wechat/login", json={"code": "proc-zhao.4"})).status_code == 403

    # key rotation (`minsheng keys rotate`): new logins get the new kid, every service takes both tokens
    before = await login("proc-qian")
    rotated = await rotate_keys(settings)

    async def new_kid_login() -> dict[str, Any] | None:
        tokens = await login(f"proc-qian.{time.monotonic_ns()}")
        return tokens if jwt.get_unverified_header(tokens["access_token"])["kid"] == rotated["new_kid"] else None

    after = await eventually(new_kid_login, within=20, interval=0.5)
    for tokens in (before, after):
        await accepted_everywhere(tokens)
    kids = [k["kid"] for k in (await http.get(f"{identity}/identity/.well-known/jwks.json")).json()["keys"]]
    assert rotated["new_kid"] in kids and rotated["retiring"][0] in kids


async def test_fire_flow_with_services_split_into_web_relay_and_consumer_processes(
    pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    """points and issues each run as three processes (``minsheng serve <service> --role web|relay|consumer``,
    all migrating at once under the advisory lock): the report is taken by points' web process, published by its
    relay, made an issue by issues' consumer; the verification travels back the same way and pays the rider."""
    env = distributed_env(pg_template, kafka[0], MINSHENG_IDENTITY_ARGON2_MEMORY_KIB="8192")
    settings = process_settings(env)
    with services_running(["identity"], env):
        procs = {
            f"{name}-{role}": start_service(name, {**env, "MINSHENG_ROLE": role})
            for name in ("points", "issues")
            for role in ("web", "relay", "consumer")
        }
        try:
            for proc in procs.values():
                wait_ready(proc)
            await _split_fire_flow(procs, settings)
        finally:
            for proc in procs.values():
                stop(proc)


async def _split_fire_flow(procs: dict[str, ServiceProcess], settings: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for name, proc in procs.items():  # the background roles serve no API, only health and metrics
            service, role = name.split("-")
            ready = (await http.get(f"{proc.url}/readyz")).json()
            api = await http.get(f"{proc.url}/{service}/openapi.json")
            assert (api.status_code == 200) is (role == "web"), name
            if role != "web":
                assert ready["role"] == role and "minsheng_db_up" in (await http.get(f"{proc.url}/metrics")).text
        await _fire_flow(http, settings, points=procs["points-web"].url, issues=procs["issues-web"].url)
