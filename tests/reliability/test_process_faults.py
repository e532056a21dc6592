"""Service processes die and come and go (distributed mode: ``minsheng serve`` processes on PostgreSQL and a
broker of the test's own).

1. SIGKILL between commit and publish: the points process accepts hazard reports (state + outbox committed)
   but cannot publish them; it is killed; on restart its relay sends what the crash left behind → one issue
   per report. Then a kill at a random moment under a steady stream: whatever was committed arrives once.
2. Rebalance: a second issues process joins the consumer group mid-stream, then the first one leaves →
   every report still has exactly one issue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.infra import free_port
from tests.support.processes import (
    ServiceProcess,
    dev_token,
    distributed_env,
    process_settings,
    start_service,
    stop,
    wait_ready,
)
from tests.support.reliability import (
    assert_each_report_once,
    env_int,
    hazard,
    pg_connect,
    record,
    rider_body,
    topic_copies,
    wait_for_effects,
)
from tests.support.tcpproxy import DurableBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = env_int("MINSHENG_RELIABILITY_STREAM_EVENTS", 300)
RIDERS = 20
# Rate limits are the points service's own business; this suite measures the transport.
NO_RATE_LIMITS = {"MINSHENG_POINTS_RIDER_RATE_PER_SECOND": "100000", "MINSHENG_POINTS_RIDER_BURST": "100000"}


class Cluster:
    def __init__(self, template: str, bootstrap: str, **extra: str) -> None:
        self.template = template
        self.env = distributed_env(
            template,
            bootstrap,
            MINSHENG_KAFKA_TOPIC_PARTITIONS="3",
            **NO_RATE_LIMITS,
            **extra,
        )
        self.settings = process_settings(self.env)
        self.procs: list[ServiceProcess] = []
        self._riders: dict[int, dict[str, str]] = {}
        self.broker_name = ""

    def start(self, name: str, *, port: int | None = None, ready: bool = True, **extra: str) -> ServiceProcess:
        if name != "identity" and not any(p.name == "identity" for p in self.procs):
            self.start("identity")  # the services verify tokens against its keys
        proc = start_service(name, {**self.env, **extra}, port=port)
        self.procs.append(proc)
        wait_ready(proc, probe="/readyz" if ready else "/healthz")  # not ready: up, even with the bus unreachable
        return proc

    def rider(self, i: int) -> dict[str, str]:
        if i not in self._riders:  # one token per rider, as a phone keeps its token
            self._riders[i] = {"Authorization": f"Bearer {dev_token(self.settings, f'proc-rider-{i}', ['rider'])}"}
        return self._riders[i]

    def db(self, service: str) -> str:
        return self.template.replace("{service}", service)

    def close(self) -> None:
        for p in self.procs:
            stop(p)


@pytest.fixture
def cluster(pg_template: str, durable_broker: DurableBroker) -> Iterator[Cluster]:
    c = Cluster(pg_template, durable_broker.bootstrap)
    c.broker_name = durable_broker.name
    try:
        yield c
    finally:
        c.close()


async def register(http: httpx.AsyncClient, url: str, c: Cluster) -> None:
    for i in range(RIDERS):
        r = await http.post(f"{url}/points/riders", headers=c.rider(i), json=rider_body(i))
        assert r.status_code in (201, 409), r.text


async def pending_outbox(database_url: str) -> int:
    conn = await pg_connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        await conn.close()


async def committed_reports(database_url: str, tag: str) -> list[str]:
    conn = await pg_connect(database_url)
    try:
        rows = await conn.fetch("SELECT id::text AS id FROM hazard_reports WHERE description LIKE $1", f"% {tag} #%")
        return [r["id"] for r in rows]
    finally:
        await conn.close()


async def stream(
    http: httpx.AsyncClient, url: str, c: Cluster, tag: str, count: int, rate: float, outcomes: dict[str, Any]
) -> None:
    """Send ``count`` reports at ``rate`` per second; record accepted ids and requests that got no answer. As the
    riders' app does, a report that got no answer is sent once more with the same Idempotency-Key (a loaded
    server may drop a kept-alive connection as the next request goes out); a killed process answers neither."""
    start = time.monotonic()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        headers = {**c.rider(i % RIDERS), "Idempotency-Key": f"{tag}-{i}"}
        for attempt in (1, 2):
            try:
                r = await http.post(f"{url}/points/hazard-reports", headers=headers, json=hazard(i, tag=tag))
                break
            except httpx.HTTPError:
                if attempt == 2:
                    outcomes["no_answer"] += 1
                    return
        if r.status_code == 201:
            outcomes["accepted"].append(r.json()["id"])
        else:
            outcomes.setdefault("status", {}).setdefault(r.status_code, 0)
            outcomes["status"][r.status_code] += 1

    await asyncio.gather(*(one(i) for i in range(count)))


async def test_a_service_killed_between_commit_and_publish_resends_on_restart_with_one_effect(
    cluster: Cluster, durable_broker: DurableBroker
) -> None:
    c = cluster
    issues = c.start("issues")
    # Phase 1: the points process commits reports it cannot publish (its broker address leads nowhere), then
    # dies by SIGKILL: the rows are committed, never published.
    port = free_port()
    points = c.start("points", port=port, ready=False, MINSHENG_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    stranded_tag = "stranded"
    async with httpx.AsyncClient(timeout=15) as http:
        await register(http, points.url, c)
        accepted = []
        for i in range(50):
            r = await http.post(
                f"{points.url}/points/hazard-reports", headers=c.rider(i % RIDERS), json=hazard(i, tag=stranded_tag)
            )
            assert r.status_code == 201, r.text
            accepted.append(r.json()["id"])
        stop(points, kill=True)
        assert points.proc.returncode == -9
        stranded = await pending_outbox(c.db("points"))
        assert stranded >= len(accepted)

        restarted = time.monotonic()
        points = c.start("points", port=port)
        effects, _ = await wait_for_effects(c.db("issues"), accepted, within=90)
        resent_in = time.monotonic() - restarted

        # Phase 2: a steady stream of reports, the points process SIGKILLed at a random moment in it.
        outcomes: dict[str, Any] = {"accepted": [], "no_answer": 0}
        writer = asyncio.create_task(stream(http, points.url, c, "killed", STREAM, 60.0, outcomes))
        await asyncio.sleep(STREAM / 60.0 / 2)
        await asyncio.to_thread(stop, points, kill=True)
        await writer
        pending_at_kill = await pending_outbox(c.db("points"))
        points = c.start("points", port=port)
        committed = await committed_reports(c.db("points"), "killed")
        stream_effects, _ = await wait_for_effects(c.db("issues"), committed, within=90)
        copies = await topic_copies(durable_broker.bootstrap, c.settings.topic_name("points.hazard"))

    record(
        "process_killed",
        {
            "broker": c.broker_name,
            "phase1_reports_committed_then_killed": len(accepted),
            "phase1_outbox_rows_stranded": stranded,
            "phase1_seconds_to_resend_after_restart": round(resent_in, 1),
            **{f"phase1_{k}": v for k, v in effects.items()},
            "phase2_stream": STREAM,
            "phase2_accepted_201": len(outcomes["accepted"]),
            "phase2_no_answer_at_kill": outcomes["no_answer"],
            "phase2_committed": len(committed),
            "phase2_outbox_pending_at_kill": pending_at_kill,
            "events_on_topic_more_than_once": sum(1 for n in copies.values() if n > 1),
            **{f"phase2_{k}": v for k, v in stream_effects.items()},
        },
    )
    assert issues.proc.poll() is None
    assert effects["lost"] == 0 and effects["duplicate_issues"] == 0
    assert effects["duplicate_issue_created_events"] == 0
    assert set(outcomes["accepted"]) <= set(committed), "every 201 was committed"
    assert_each_report_once(stream_effects, "everything committed was published after the restart")


async def test_consumers_joining_and_leaving_mid_stream_cause_no_duplicate_effects(cluster: Cluster) -> None:
    c = cluster
    points = c.start("points")
    first = c.start("issues")
    outcomes: dict[str, Any] = {"accepted": [], "no_answer": 0}
    count, rate = 2 * STREAM, 30.0
    seconds = count / rate
    # The subject is the consumer group, not latency: on a loaded 2-core machine a POST may wait well past 15 s.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:
        await register(http, points.url, c)
        began = time.monotonic()
        writer = asyncio.create_task(stream(http, points.url, c, "rebalance", count, rate, outcomes))

        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, began + seconds * fraction - time.monotonic()))

        await at(0.2)
        second = await asyncio.to_thread(c.start, "issues")  # joins the group: partitions move mid-stream
        await at(0.45)
        await asyncio.to_thread(stop, first)  # leaves gracefully (SIGTERM): its partitions move again
        third = await asyncio.to_thread(c.start, "issues")  # a third joins ...
        await at(0.8)
        await asyncio.to_thread(stop, third, kill=True)  # ... and dies (SIGKILL): the group waits out its session
        await writer
        effects, drained = await wait_for_effects(c.db("issues"), outcomes["accepted"], within=120)
        metrics = (await http.get(f"{second.url}/metrics")).text

    handled_by_second = _metric(metrics, 'minsheng_consumer_events_total{outcome="handled",service="issues"}')
    duplicates_absorbed = _metric(metrics, 'minsheng_consumer_events_total{outcome="duplicate",service="issues"}')
    record(
        "consumer_rebalance",
        {
            "broker": c.broker_name,
            "stream": count,
            "rate_per_second": rate,
            "accepted": len(outcomes["accepted"]),
            "partitions": 3,
            "membership_changes": "join, graceful leave, join, SIGKILL",
            "handled_by_surviving_process": handled_by_second,
            "redeliveries_absorbed_by_inbox_in_surviving_process": duplicates_absorbed,
            "seconds_to_complete_after_stream": round(drained, 1),
            **effects,
        },
    )
    assert len(outcomes["accepted"]) == count, outcomes
    assert handled_by_second > 0, "the second process took over partitions"
    assert_each_report_once(effects)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    labels = name.split("{", 1)
    wanted = set(labels[1].rstrip("}").split(",")) if len(labels) > 1 else set()
    for line in text.splitlines():
        if line.startswith(labels[0] + "{"):
            got = set(line.split("{", 1)[1].split("}", 1)[0].split(","))
            if wanted <= got:
                return float(line.split()[-1])
    return 0.0
