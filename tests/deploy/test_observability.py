"""Metrics, logs and a cross-service trace, shown on the compose deployment (see conftest)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from minsheng.platform.tasks import within
from tests.deploy.conftest import Deployment
from tests.support.infra import eventually
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


def scrape(deployment: Deployment, service: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """name → [(labels, value)] from a service's /metrics (straight to the process, as Prometheus does)."""
    r = httpx.get(f"http://127.0.0.1:{deployment.procs[service].port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def of_role(deployment: Deployment, service: str, role: str) -> str:
    """The compose process that runs ``role`` of ``service`` (``<service>-relay``, ``<service>-consumer``; the web
    role keeps the service's name)."""
    name = f"{service}-{role}"
    return name if name in deployment.procs else service


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items()))


async def outbox(deployment: Deployment, service: str) -> list[dict[str, Any]]:
    url = make_url(deployment.database_urls[service])
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        rows = await conn.fetch("SELECT type, payload, headers, sent_at FROM outbox ORDER BY id")
    finally:
        await conn.close()
    return [
        {
            "type": r["type"],
            "envelope": json.loads(r["payload"]),
            "headers": json.loads(r["headers"]) if isinstance(r["headers"], str) else r["headers"],
            "sent": r["sent_at"] is not None,
        }
        for r in rows
    ]


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_metrics_logs_and_one_trace_across_services(deployment: Deployment) -> None:
    d = deployment
    trace = "0af7651916cd43dd8448eb211c80319c"
    rider = {
        **d.auth("rider", sub="rider-trace"),
        "traceparent": f"00-{trace}-b7ad6b7169203331-01",
        "X-Request-ID": "trace-test-report-1",
    }
    staff = d.auth("staff", sub="staff-trace", scopes=["community:yunxing"])
    async with httpx.AsyncClient(base_url=d.gateway, timeout=15) as client:
        r = await client.post(
            "/points/riders",
            headers=rider,
            json={"name": "黄骑士", "platform": "eleme", "phone": "13900001111", "community": "yunxing"},
        )
        assert r.status_code == 201, r.text
        elsewhere = {**FIRE, "description": "Bin on fire by the market", "latitude": 40.0634, "longitude": 112.7532}
        r = await client.post("/points/hazard-reports", headers=rider, json=elsewhere)
        assert r.status_code == 201, r.text
        report = r.json()

        async def the_issue() -> dict[str, Any] | None:
            items = (await client.get("/issues/issues", headers=staff)).json()["items"]
            return next((i for i in items if i.get("origin_id") == report["id"]), None)

        issue = await eventually(the_issue, within=30)
        # The staff member acts on the issue later, in a request of their own (their own trace).
        r = await client.post(f"/issues/issues/{issue['id']}/verify", headers=staff, json={"note": "seen"})
        assert r.status_code == 200, r.text

        async def posted() -> list[dict[str, Any]]:
            return [
                e
                for e in await outbox(d, "points")
                if e["type"] == "minsheng.points.ledger.posted.v1"
                and e["envelope"]["data"].get("rider_id") is not None
                and e["sent"]
                and report["id"] in json.dumps(e["envelope"]["data"])
            ]

        points_posted = (await eventually(posted, within=30))[0]

    # --- one trace: rider report → urgent issue → the rider's report accepted → points ------------------------
    points_events = await outbox(d, "points")
    issues_events = await outbox(d, "issues")
    reported = next(
        e
        for e in points_events
        if e["type"] == "minsheng.points.hazard.reported.v1" and e["envelope"]["data"].get("report_id") == report["id"]
    )
    created = next(
        e
        for e in issues_events
        if e["type"] == "minsheng.issues.issue.created.v1" and e["envelope"]["data"].get("issue_id") == issue["id"]
    )
    verified = next(
        e
        for e in issues_events
        if e["type"] == "minsheng.issues.issue.verified.v1" and e["envelope"]["data"].get("issue_id") == issue["id"]
    )
    assert trace_id(reported["envelope"]["traceparent"]) == trace
    assert trace_id(created["envelope"]["traceparent"]) == trace, "the issue continues the rider's trace"
    assert reported["headers"]["traceparent"] == reported["envelope"]["traceparent"]  # copied to Kafka headers
    assert created["envelope"]["correlationid"] == "trace-test-report-1"
    assert created["envelope"]["causationid"] == reported["envelope"]["id"]
    # Points: posted while handling IssueVerified, so caused by it and in the verifying request's trace.
    verify_trace = trace_id(verified["envelope"]["traceparent"])
    assert points_posted["envelope"]["causationid"] == verified["envelope"]["id"]
    assert trace_id(points_posted["envelope"]["traceparent"]) == verify_trace
    # Every hop made a new span under its trace.
    spans = {e["envelope"]["traceparent"].split("-")[2] for e in (reported, created, verified, points_posted)}
    assert len(spans) == 4

    # --- metrics ---------------------------------------------------------------------------------------------
    points = scrape(d, "points")
    issues = scrape(d, "issues")
    assert (
        value(points, "minsheng_http_requests_total", route="/points/hazard-reports", method="POST", status="201") >= 1
    )
    assert value(points, "minsheng_http_request_duration_seconds_count", route="/points/hazard-reports") >= 1
    assert (
        value(points, "minsheng_http_request_duration_seconds_bucket", route="/points/hazard-reports", le="+Inf") >= 1
    )
    for samples, service in ((points, "points"), (issues, "issues")):
        # Every role's process reports the database-backed gauges and its own health.
        for role in ("web", "relay", "consumer"):
            of = samples if role == "web" else scrape(d, of_role(d, service, role))
            assert value(of, "minsheng_db_up", service=service) == 1
            assert value(of, "minsheng_bus_up") == 1
            assert "minsheng_outbox_pending" in of and "minsheng_outbox_oldest_pending_age_seconds" in of
            assert "minsheng_dead_letters_unreplayed" in of and "process_resident_memory_bytes" in of
        relayed, consumed = scrape(d, of_role(d, service, "relay")), scrape(d, of_role(d, service, "consumer"))
        assert value(relayed, "minsheng_outbox_published_total", service=service) >= 1
        assert value(consumed, "minsheng_consumer_events_total", service=service, outcome="handled") >= 1
        assert "minsheng_consumer_handler_failures_total" in consumed
        assert "minsheng_consumer_dead_letters_total" in consumed
    # Consumer lag per assigned partition, from the Kafka consumer (0 once everything is handled).
    consumer = of_role(d, "issues", "consumer")
    lag = [
        (lab, v) for lab, v in scrape(d, consumer).get("minsheng_consumer_lag", []) if lab["topic"] == "points.hazard"
    ]
    assert lag and {lab["group"] for lab, _ in lag} == {"issues"}

    async def caught_up() -> bool:
        again = scrape(d, consumer)
        return (
            value(again, "minsheng_consumer_lag", group="issues") == 0
            and value(again, "minsheng_outbox_pending", service="issues") == 0
        )

    await eventually(caught_up, within=15)

    # --- logs: each service's JSON lines for this story carry the rider's trace id ------------------------------
    def entries(service: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in d.procs[service].log().splitlines() if line.startswith("{")]

    # points: the report request (access log with request id, route, status, duration) ...
    report_log = [e for e in entries("points") if e.get("request_id") == "trace-test-report-1"]
    assert report_log and all(e["trace_id"] == trace for e in report_log)
    assert any(e.get("http_route") == "/points/hazard-reports" and e["http_status"] == 201 for e in report_log)
    # ... issues: handling HazardReported (it opened the urgent issue) ...
    handled = [e for e in entries(consumer) if e.get("event_id") == reported["envelope"]["id"]]
    assert handled and handled[0]["trace_id"] == trace and handled[0]["correlation_id"] == "trace-test-report-1"
    # ... and points again: handling IssueCreated (the rider's report accepted and linked to the issue).
    accepted = [e for e in entries(of_role(d, "points", "consumer")) if e.get("event_id") == created["envelope"]["id"]]
    assert accepted and accepted[0]["trace_id"] == trace and accepted[0]["causation_id"] == created["envelope"]["id"]


async def test_a_poison_event_is_dead_lettered_counted_and_listed(deployment: Deployment) -> None:
    """The dead-letter path of the runbook on the running deployment: an event that violates its contract
    arrives on points.hazard → the issues service dead-letters it at once (the partition moves on) → the
    metrics count it, the issues.dlq topic carries it with the error, `minsheng dlq list` shows it."""
    import asyncio
    import os
    import sys
    import uuid

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    d = deployment
    bootstrap = d.procs["issues"].env["MINSHENG_KAFKA_BOOTSTRAP"]
    event_id = str(uuid.uuid4())
    poison = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/services/points",
        "partitionkey": "x",
        "type": "minsheng.points.hazard.reported.v1",
        "time": "2026-11-27T10:00:00Z",
        "data": {"report_id": "not-a-uuid"},
    }
    consumer = of_role(d, "issues", "consumer")
    before = value(scrape(d, consumer), "minsheng_consumer_dead_letters_total", service="issues")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("points.hazard", json.dumps(poison).encode(), key=b"x")
    finally:
        await producer.stop()

    async def counted() -> bool:
        s = scrape(d, consumer)
        return (
            value(s, "minsheng_consumer_dead_letters_total", service="issues") == before + 1
            and value(s, "minsheng_dead_letters_unreplayed", service="issues") >= 1
        )

    await eventually(counted, within=20)

    consumer = AIOKafkaConsumer(
        "issues.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        dead = None
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=250)
            dead = next((r for recs in batch.values() for r in recs if event_id.encode() in (r.value or b"")), None)
            if dead:
                break
        assert dead is not None, "nothing on issues.dlq"
        headers = dict(dead.headers)
        assert b"violates its contract" in headers["dlq_error"] and headers["dlq_topic"] == b"points.hazard"
    finally:
        await consumer.stop()

    listed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minsheng.cli",
        "dlq",
        "list",
        "issues",
        env={**os.environ, **d.procs["issues"].env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await within(60, listed.communicate())
    assert listed.returncode == 0, err.decode()[-2000:]
    rows = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any(r["event_id"] == event_id and "violates its contract" in r["error"] for r in rows)
