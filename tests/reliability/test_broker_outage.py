"""The broker is stopped for 30 s while 1,000 hazard reports are written (distributed mode: PostgreSQL and a
Kafka-protocol broker). Residents are never refused; when the broker returns, the outbox drains: every report
becomes exactly one issue. ``MINSHENG_RELIABILITY_OUTAGE_SECONDS`` / ``MINSHENG_RELIABILITY_EVENTS`` change
the 30 s / 1,000 (the test at ``tests/integration/test_bus_faults.py`` is the quick 25-event version)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from minsheng.platform.outbox import outbox_status
from minsheng.settings import Settings
from tests.support.client import running_system
from tests.support.reliability import (
    assert_each_report_once,
    env_float,
    env_int,
    hazard,
    percentile,
    production,
    record,
    register_riders,
    riders_for,
    wait_for_effects,
    warm_up,
)
from tests.support.tcpproxy import DurableBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = env_float("MINSHENG_RELIABILITY_OUTAGE_SECONDS", 30.0)
EVENTS = env_int("MINSHENG_RELIABILITY_EVENTS", 1000)
DRAIN_TIMEOUT = env_float("MINSHENG_RELIABILITY_DRAIN_TIMEOUT", 180.0)


async def test_broker_down_while_events_are_written_loses_nothing_and_doubles_nothing(
    durable_broker: DurableBroker, on_durable_broker: Callable[..., Settings]
) -> None:
    settings = on_durable_broker(
        kafka_topic_partitions=3,
        **production("relay_poll_seconds", "relay_max_backoff_seconds"),
    )
    async with running_system(settings) as s:
        riders = await register_riders(s, riders_for(EVENTS))
        issues_url = settings.database_url_for("issues")

        await warm_up(s, riders[0], issues_url, EVENTS, before="the outage")

        durable_broker.stop()
        stopped_at = time.monotonic()
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        report_ids: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(EVENTS):
            queue.put_nowait(i)

        async def writer() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                due = stopped_at + i * OUTAGE_SECONDS * 0.9 / EVENTS  # spread over the outage
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                began = time.monotonic()
                r = await s.client.post(
                    "/points/hazard-reports", headers=riders[i % len(riders)], json=hazard(i, tag="outage")
                )
                latencies.append(time.monotonic() - began)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 201:
                    report_ids.append(r.json()["id"])

        await asyncio.gather(*(writer() for _ in range(8)))
        written_in = time.monotonic() - stopped_at
        pending_peak = (await outbox_status(s.runtime("points").db)).pending
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))

        durable_broker.start()  # back with its logs and consumer offsets, as a Kafka cluster comes back
        restarted_at = time.monotonic()
        effects, _ = await wait_for_effects(issues_url, report_ids, within=DRAIN_TIMEOUT)
        drained_in = time.monotonic() - restarted_at
        status = await outbox_status(s.runtime("points").db)
        consumer = s.runtime("issues").consumer.stats

        record(
            "broker_outage",
            {
                "broker": durable_broker.name,
                "events_written": EVENTS,
                "outage_seconds": round(restarted_at - stopped_at, 1),
                "write_seconds": round(written_in, 1),
                "responses": statuses,
                "write_latency_ms_p50": round(percentile(latencies, 50) * 1000, 1),
                "write_latency_ms_p99": round(percentile(latencies, 99) * 1000, 1),
                "outbox_pending_peak": pending_peak,
                "relay_max_backoff_seconds": settings.relay_max_backoff_seconds,
                "time_to_drain_seconds": round(drained_in, 1),
                "outbox_pending_after": status.pending,
                "consumer_duplicates_absorbed": consumer.duplicates,
                **effects,
            },
        )
        assert statuses == {201: EVENTS}, "residents are never refused because the broker is away"
        assert pending_peak >= EVENTS, "the events waited in the outbox"
        assert_each_report_once(effects)
        assert status.pending == 0
