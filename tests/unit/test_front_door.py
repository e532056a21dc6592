"""The front door answers every request exactly as the root app's ``Mount`` did, with one stack instead of two."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.routing import _IncludedRouter
from starlette.routing import Mount

import minsheng.platform.app as app_module
from minsheng.platform.auth import mint_token
from minsheng.platform.front_door import FrontDoor, FrontDoorApp, flatten_routes
from minsheng.platform.tokens import KeyRing
from minsheng.runner import build_app
from tests.conftest import embedded_settings

Headers = list[tuple[bytes, bytes]]
LOCAL = [(b"origin", b"http://localhost:5173")]
JSON = [(b"content-type", b"application/json")]


async def call(
    app: Any,
    method: str,
    path: str,
    headers: Headers | None = None,
    body: bytes = b"",
    root_path: str = "",
    query: bytes = b"",
) -> dict[str, Any]:
    """One request over raw ASGI (``root_path`` and paths httpx would not send as they are)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": query,
        "headers": [(b"host", b"minsheng.test"), (b"x-request-id", b"rid-1"), *(headers or [])],
        "client": ("127.0.0.1", 1234),
        "server": ("minsheng.test", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError("unreachable")

    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = sorted((k, v) for k, v in message.get("headers", []) if k != b"date")
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer


@pytest.fixture
async def apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    """The same two services behind the front door with flat route tables, and as before: behind a plain
    FastAPI root (``Mount``) with their routers included as branches; one rider registered in each."""
    ring = KeyRing.ephemeral()
    built: dict[str, Any] = {}
    for label, root_class in (("mount", FastAPI), ("front", FrontDoorApp)):
        monkeypatch.setattr(app_module, "FrontDoorApp", root_class)
        if label == "mount":
            monkeypatch.setattr(app_module, "flatten_routes", lambda app: 0)
        else:
            monkeypatch.setattr(app_module, "flatten_routes", flatten_routes)
        settings = embedded_settings(tmp_path / label)
        built[label] = build_app(settings, ["points", "issues"], keyring=ring)
    monkeypatch.undo()
    assert type(built["front"]) is FrontDoorApp and type(built["mount"]) is FastAPI
    token = mint_token(ring, settings, "rider-1", ["rider"])
    rider = {"name": "骑手", "platform": "meituan", "phone": "13812345678", "community": "yunxing"}
    async with AsyncExitStack() as stack:
        for app in built.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
            auth = [(b"authorization", f"Bearer {token}".encode())]
            assert (await call(app, "POST", "/points/riders", auth + JSON, json.dumps(rider).encode()))["status"] == 201
        yield {**built, "auth": [(b"authorization", f"Bearer {token}".encode())]}


CASES: list[tuple[str, str, str, bytes, str, bytes]] = [
    # method, path, headers (by name), body, root_path, query
    ("GET", "/", "", b"", "", b""),
    ("GET", "/healthz", "", b"", "", b""),
    ("GET", "/readyz", "", b"", "", b""),
    ("GET", "/points/healthz", "origin", b"", "", b""),
    ("GET", "/points/riders/me/balance", "", b"", "", b""),
    ("GET", "/points/riders/me/balance/", "auth", b"", "", b""),
    ("GET", "/points/riders/me", "garbage", b"", "", b""),
    ("GET", "/points/no/such/thing", "", b"", "", b""),
    ("GET", "/points", "", b"", "", b""),
    ("GET", "/points/", "", b"", "", b""),
    ("GET", "/pointsx/healthz", "", b"", "", b""),
    ("GET", "/nope", "", b"", "", b""),
    ("GET", "/points/a\nb", "", b"", "", b""),
    ("GET", "/points/docs", "", b"", "", b""),
    ("GET", "/points/openapi.json", "", b"", "", b""),
    ("GET", "/api/points/openapi.json", "", b"", "/api", b""),
    ("GET", "/api/points/docs", "", b"", "/api", b""),
    ("GET", "/api/points/healthz", "", b"", "/api", b""),
    ("OPTIONS", "/points/riders/me/balance", "preflight", b"", "", b""),
    ("OPTIONS", "/points/riders/me/balance", "foreign-preflight", b"", "", b""),
    ("GET", "/points/healthz", "", b"", "", b"x=a%00b"),
    ("POST", "/points/hazard-reports", "auth-json", b'{"note":"\\u0000"}', "", b""),
    ("POST", "/points/hazard-reports", "auth-json", b'{"note":', "", b""),
    ("DELETE", "/points/healthz", "", b"", "", b""),
    ("GET", "/issues/open311/v2/requests.xml", "", b"", "", b"status=bogus"),
    ("GET", "/issues/open311/v2/requests.xml", "", b"", "", b"q=%00"),
    ("GET", "/issues/issues/not-a-uuid", "auth", b"", "", b""),
]


def headers_named(name: str, auth: Headers) -> Headers:
    return {
        "": [],
        "auth": auth,
        "auth-json": auth + JSON,
        "origin": LOCAL,
        "garbage": [(b"authorization", b"Bearer garbage")],
        "preflight": [*LOCAL, (b"access-control-request-method", b"GET")],
        "foreign-preflight": [(b"origin", b"http://evil.example"), (b"access-control-request-method", b"GET")],
    }[name]


async def test_every_answer_is_the_one_the_mount_gave(apps: dict[str, Any]) -> None:
    for method, path, header_name, body, root_path, query in CASES:
        headers = headers_named(header_name, apps["auth"])
        mount = await call(apps["mount"], method, path, headers, body, root_path, query)
        front = await call(apps["front"], method, path, headers, body, root_path, query)
        assert front == mount, (method, root_path, path, query)
    balance = [await call(apps[k], "GET", "/points/riders/me/balance", apps["auth"]) for k in ("mount", "front")]
    assert balance[0]["status"] == balance[1]["status"] == 200
    assert json.loads(balance[0]["body"]).keys() == json.loads(balance[1]["body"]).keys()


async def test_metrics_count_the_same_routes(apps: dict[str, Any]) -> None:
    for method, path, header_name, body, root_path, query in CASES:
        for label in ("mount", "front"):
            await call(apps[label], method, path, headers_named(header_name, apps["auth"]), body, root_path, query)
    counted = {}
    for label in ("mount", "front"):
        text = (await call(apps[label], "GET", "/metrics"))["body"].decode()
        counted[label] = sorted(line for line in text.splitlines() if line.startswith("minsheng_http_requests_total"))
    # One label is corrected: a route included under a prefix is counted under its full template (the branch
    # put its own path in ``scope["route"]``, without the prefix).
    before = [
        line.replace('route="/issues/requests.{fmt}"', 'route="/issues/open311/v2/requests.{fmt}"')
        for line in counted["mount"]
    ]
    assert counted["front"] == before
    assert any('route="/points/riders/me/balance"' in line for line in counted["front"])
    assert any('route="/issues/open311/v2/requests.{fmt}"' in line for line in counted["front"])


def test_flat_route_tables_document_the_same_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flat = build_app(embedded_settings(tmp_path / "flat"))
    monkeypatch.setattr(app_module, "flatten_routes", lambda app: 0)
    branched = build_app(embedded_settings(tmp_path / "branched"))
    flat_apps = {r.path: r.app for r in flat.routes if isinstance(r, Mount)}
    branched_apps = {r.path: r.app for r in branched.routes if isinstance(r, Mount)}
    assert flat_apps.keys() == branched_apps.keys() and len(flat_apps) == 6
    for path, flat_app in flat_apps.items():
        assert isinstance(flat_app, FastAPI)
        before = branched_apps[path]
        assert isinstance(before, FastAPI)
        assert not any(isinstance(route, _IncludedRouter) for route in flat_app.router.routes), path
        assert any(isinstance(route, _IncludedRouter) for route in before.router.routes)
        assert flat_app.openapi() == before.openapi(), path


async def test_service_requests_skip_the_root_stack(apps: dict[str, Any]) -> None:
    front = apps["front"]
    door = front.middleware_stack
    assert isinstance(door, FrontDoor) and set(door.services) == {"points", "issues"}
    entered: list[str] = []
    root_stack = door.fallback

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await root_stack(scope, receive, send)

    door.fallback = counting
    try:
        assert (await call(front, "GET", "/points/healthz"))["status"] == 200
        assert (await call(front, "GET", "/issues/healthz"))["status"] == 200
        assert entered == []
        assert (await call(front, "GET", "/healthz"))["status"] == 200
        assert (await call(front, "GET", "/points"))["status"] == 307  # no slash: the root redirects, as before
        assert entered == ["/healthz", "/points"]
    finally:
        door.fallback = root_stack


async def test_the_service_app_sees_the_scope_a_mount_gives(apps: dict[str, Any]) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for label in ("mount", "front"):
        app = apps[label]
        points = next(r.app for r in app.routes if getattr(r, "path", "") == "/points")

        @points.get("/_scope_probe", include_in_schema=False)
        async def probe(request: Request) -> dict[str, Any]:
            return {
                "root_path": request.scope["root_path"],
                "app_root_path": request.scope["app_root_path"],
                "url": str(request.url),
                "base_url": str(request.base_url),
                "url_for": str(request.url_for("probe")),
                "router": id(request.scope["router"]),
            }

        answer = await call(app, "GET", "/api/points/_scope_probe", root_path="/api")
        assert answer["status"] == 200, answer
        seen[label] = json.loads(answer["body"])
        assert seen[label].pop("router") == id(app.router), "url_for resolves through the root's mounts"
    assert seen["front"] == seen["mount"]
    assert seen["front"]["root_path"] == "/api/points"
    assert seen["front"]["url_for"] == "http://minsheng.test/api/points/_scope_probe"
