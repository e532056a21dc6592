"""The compose-equivalent smoke test: what docker-compose.yml defines, run as local processes (see conftest),
driven only through the gateway."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.deploy.conftest import Deployment
from tests.support.infra import eventually
from tests.support.photos import phone_jpeg
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


def test_jobs_ran_from_the_compose_file(deployment: Deployment) -> None:
    assert set(deployment.jobs) == {
        "kafka-topics",
        "visits-migrate",
        "issues-migrate",
        "points-migrate",
        "canteen-migrate",
        "identity-migrate",
        "notify-migrate",
    }
    created = deployment.jobs["kafka-topics"].stdout
    for topic in ("points.hazard", "issues.issue", "points.ledger", "issues.dlq", "points.dlq"):
        assert f"{topic}: created" in created, created
    web = {"visits", "issues", "points", "canteen", "identity", "notify"}
    assert set(deployment.procs) == web | {f"{s}-{role}" for s in web for role in ("relay", "consumer")}


async def test_rider_fire_flow_through_the_gateway(deployment: Deployment) -> None:
    d = deployment
    rider = d.auth("rider", sub="rider-smoke-fan")
    staff = d.auth("staff", sub="staff-smoke", scopes=["community:yunxing"])
    async with httpx.AsyncClient(base_url=d.gateway, timeout=15) as client:
        r = await client.post(
            "/points/riders",
            headers=rider,
            json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["phone"] == "138****5678"

        # A photo as wx.uploadFile sends it, through the gateway into the object store (SeaweedFS here).
        r = await client.post("/points/photos", headers=rider, files={"file": ("wx.jpg", phone_jpeg(), "image/jpeg")})
        assert r.status_code == 201, r.text
        photo = r.json()
        r = await client.post("/points/hazard-reports", headers=rider, json={**FIRE, "photo_ids": [photo["id"]]})
        assert r.status_code == 201, r.text
        report = r.json()
        assert report["urgent"] is True and report["photo_urls"] == [photo["url"]]
        signed = await client.get(photo["url"])
        assert signed.status_code == 302 and "X-Amz-Signature=" in signed.headers["location"]
        async with httpx.AsyncClient(timeout=15) as outside:
            stored = await outside.get(signed.headers["location"])  # straight from the object store
        assert stored.status_code == 200 and len(Image.open(io.BytesIO(stored.content)).getexif()) == 0

        async def the_issue() -> dict[str, Any] | None:
            items = (await client.get("/issues/issues", headers=staff)).json()["items"]
            return next((i for i in items if i.get("origin_id") == report["id"]), None)

        issue = await eventually(the_issue, within=30)
        assert issue["urgent"] is True and issue["category"] == "fire"
        assert issue["photo_urls"] == [photo["url"]]  # the rider's photo, by its stable path

        r = await client.post(f"/issues/issues/{issue['id']}/verify", headers=staff, json={"note": "seen"})
        assert r.status_code == 200, r.text

        async def balance() -> int:
            r = await client.get("/points/riders/me/balance", headers=rider)
            return int(r.json()["balance"])

        async def paid() -> bool:
            return await balance() == 20

        await eventually(paid, within=30)


async def test_gateway_paths_ids_and_limits(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.gateway, timeout=10) as client:
        # Every request gets an id (nginx's, passed to the service, returned to the client) ...
        r = await client.get("/points/healthz")
        assert r.status_code == 200
        generated = r.headers["x-request-id"]
        assert len(generated) == 32 and r.headers.get_list("x-request-id") == [generated]
        # ... and a client's own id is kept end to end.
        r = await client.get("/issues/healthz", headers={"X-Request-ID": "client-req-0001"})
        assert r.headers["x-request-id"] == "client-req-0001"
        # Same paths as the embedded mode, for every service; nothing else is routed.
        for service in ("visits", "issues", "points", "canteen", "identity", "notify"):
            assert (await client.get(f"/{service}/openapi.json")).status_code == 200, service
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/readyz")).status_code == 404
        assert (await client.get("/healthz")).json()["component"] == "gateway"
        # Upload limits: 2 MB for JSON APIs, 20 MB for issue and hazard-report photos.
        big = b"x" * (3 * 1024 * 1024)
        r = await client.post("/visits/needs", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        r = await client.post("/issues/issues", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code != 413


def test_json_logs_carry_request_and_trace_ids(deployment: Deployment) -> None:
    import json

    rid = f"smoke-log-{int(time.time() * 1000)}"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = httpx.get(
        f"{deployment.gateway}/points/riders/me/balance",
        headers={"X-Request-ID": rid, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    assert r.status_code in (401, 403), r.text

    def logged() -> dict[str, Any] | None:
        for line in deployment.procs["points"].log().splitlines():
            if rid in line and line.startswith("{"):
                entry: dict[str, Any] = json.loads(line)
                if entry.get("logger") == "minsheng.access":
                    return entry
        return None

    deadline = time.monotonic() + 10
    entry = logged()
    while entry is None and time.monotonic() < deadline:
        time.sleep(0.1)
        entry = logged()
    assert entry is not None, deployment.procs["points"].log()[-2000:]
    assert entry["request_id"] == rid and entry["trace_id"] == trace
    assert entry["http_route"] == "/points/riders/me/balance" and entry["http_status"] == r.status_code
    # The gateway's own access log is JSON too, with the same request id and trace.
    gateway_line = next(line for line in deployment.nginx.log().splitlines() if rid in line)
    gateway_entry = json.loads(gateway_line)
    assert gateway_entry["request_id"] == rid and trace in gateway_entry["traceparent"]
