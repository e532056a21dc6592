"""PostgreSQL restarted in the middle of a stream of writes (distributed mode; a private PostgreSQL server of
this test's own, since the shared one must never be restarted). While it is away, clients get clean 503
problem responses (never a 500, never a hang); nothing is half-written; once it is back, the services recover
by themselves — requests succeed again, the relay publishes, consumers handle — and retrying the refused
requests with their Idempotency-Key gives exactly one report each."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from minsheng.contracts.points import HazardReported
from tests.conftest import distributed_settings
from tests.support.client import running_system
from tests.support.pgserver import PrivatePostgres
from tests.support.reliability import (
    env_float,
    env_int,
    hazard,
    new_key,
    pg_connect,
    record,
    register_riders,
    wait_for_effects,
)
from tests.support.tcpproxy import DurableBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRITES = env_int("MINSHENG_RELIABILITY_DB_WRITES", 400)
DOWN_SECONDS = env_float("MINSHENG_RELIABILITY_DB_DOWN_SECONDS", 5.0)
RATE = 40.0
RIDERS = 40  # the per-rider rate limit (burst 20) is not what this test is about


async def test_postgres_restart_mid_flow_gives_clean_503s_no_partial_writes_and_recovers_by_itself(
    tmp_path: Path, private_pg: PrivatePostgres, private_pg_template: str, durable_broker: DurableBroker
) -> None:
    settings = distributed_settings(tmp_path, private_pg_template, durable_broker.bootstrap, kafka_topic_partitions=3)
    async with running_system(settings) as s:
        riders = await register_riders(s, RIDERS, prefix="db-rider")

        # As a real server answers: the response the app sent, not the exception Starlette re-raises after it.
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=s.app, raise_app_exceptions=False),
            base_url="http://minsheng.test",
            timeout=30,
        )
        requests = [(riders[i % RIDERS], new_key(), hazard(i, tag="dbrestart")) for i in range(WRITES)]
        answers: list[tuple[float, int, str, dict[str, Any], dict[str, str], str]] = []
        began = time.monotonic()

        async def send(i: int) -> None:
            await asyncio.sleep(max(0.0, began + i / RATE - time.monotonic()))
            headers, key, body = requests[i]
            t0 = time.monotonic()
            r = await http.post("/points/hazard-reports", headers={**headers, "Idempotency-Key": key}, json=body)
            payload = r.json() if r.headers.get("content-type", "").endswith("json") else {}
            answers.append((t0, r.status_code, r.headers.get("content-type", ""), payload, dict(r.headers), key))

        writer = asyncio.gather(*(send(i) for i in range(WRITES)))
        await asyncio.sleep(WRITES / RATE / 3)
        down_at = time.monotonic()
        await asyncio.to_thread(private_pg.stop, "fast")  # disconnects every client, mid-transaction
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(private_pg.start)
        up_at = time.monotonic()
        await writer

        statuses: dict[int, int] = {}
        for _, status, *_ in answers:
            statuses[status] = statuses.get(status, 0) + 1
        refused = [a for a in answers if a[1] != 201]
        clean = [
            a
            for a in refused
            if a[1] == 503
            and a[2].startswith("application/problem+json")
            and a[3].get("code") == "unavailable"
            and "retry-after" in {k.lower() for k in a[4]}
        ]
        first_ok_after_up = min((a[0] for a in answers if a[1] == 201 and a[0] >= up_at), default=None)
        refused_after_up = sum(1 for a in refused if a[0] >= up_at)

        # The clients retry what was refused, with the same key: exactly one report each, whatever happened.
        retries = 0
        refused_keys = {a[5] for a in refused}
        for headers, key, body in requests:
            if key not in refused_keys:
                continue
            for _ in range(20):
                r = await http.post("/points/hazard-reports", headers={**headers, "Idempotency-Key": key}, json=body)
                if r.status_code == 201:
                    break
                retries += 1
                await asyncio.sleep(0.5)
            assert r.status_code == 201, r.text

        await http.aclose()
        points = await pg_connect(settings.database_url_for("points"))
        try:
            reports = await points.fetch(
                "SELECT id::text AS id, description FROM hazard_reports WHERE description LIKE '%dbrestart #%'"
            )
            events = await points.fetch(
                "SELECT payload::jsonb -> 'data' ->> 'report_id' AS report_id, count(*) AS n FROM outbox "
                "WHERE type = $1 GROUP BY 1",
                HazardReported.event_type,
            )
        finally:
            await points.close()
        report_ids = [r["id"] for r in reports]
        events_per_report = {e["report_id"]: int(e["n"]) for e in events}
        flow_start = time.monotonic()
        effects, _ = await wait_for_effects(settings.database_url_for("issues"), report_ids, within=120)
        flowed_in = time.monotonic() - flow_start

    record(
        "database_restart",
        {
            "broker": durable_broker.name,
            "writes": WRITES,
            "rate_per_second": RATE,
            "database_down_seconds": round(up_at - down_at, 1),
            "responses": statuses,
            "refused": len(refused),
            "refused_clean_503_problem": len(clean),
            "server_errors_500": statuses.get(500, 0),
            "first_success_after_database_back_seconds": round(first_ok_after_up - up_at, 2)
            if first_ok_after_up
            else None,
            "refused_after_database_back": refused_after_up,
            "refused_requests_retried_with_same_key": len(refused_keys),
            "retries_refused_again": retries,
            "reports_stored": len(reports),
            "distinct_requests": WRITES,
            "reports_without_their_event": sum(1 for r in report_ids if events_per_report.get(r, 0) == 0),
            "reports_with_more_than_one_event": sum(1 for r in report_ids if events_per_report.get(r, 0) > 1),
            "seconds_for_flow_to_issues_after_retries": round(flowed_in, 1),
            **effects,
        },
    )
    assert statuses.get(500, 0) == 0, "never a 500"
    assert len(clean) == len(refused), f"every refusal is a clean 503 problem: {[a[1:4] for a in refused][:5]}"
    assert refused, "the restart was noticed (some requests were refused)"
    assert len(reports) == WRITES, "one report per request, retried or not: no lost and no doubled writes"
    assert len({r["description"] for r in reports}) == WRITES
    assert all(events_per_report.get(r) == 1 for r in report_ids), "state and event were written together"
    assert effects["lost"] == 0 and effects["duplicate_issues"] == 0, "relay and consumers recovered by themselves"
    assert effects["duplicate_issue_created_events"] == 0
