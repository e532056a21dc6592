"""The broker comes back *empty* (issue 14): events it had acknowledged are gone, and so are the topics and the
consumer groups' committed offsets. Reproduced by deleting the broker's log directory and restarting it on the
same port (Apache Kafka; with MINSHENG_TEST_KAFKA=tansu, by restarting the memory-only Tansu).

What must hold:

- the loss is detected: the issues consumer's offsets lie beyond the new log's end → the partition is rewound
  to the earliest offset and ``minsheng_consumer_offset_resets_total{reason="beyond_end"}`` counts it;
- new reports written after the restart still become issues (nothing needs a restart);
- ``minsheng outbox resend --service points --since T`` recovers every lost report: 0 lost, 0 duplicate effects
  (the re-sent events that had already been handled are dropped by the inbox).

``MINSHENG_RELIABILITY_EVENTS`` changes how many reports are written before (handled) and around the loss.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.outbox import outbox_status
from tests.conftest import distributed_settings
from tests.support.client import System, running_system
from tests.support.infra import LocalBroker, becomes, eventually
from tests.support.processes import run_module
from tests.support.reliability import (
    assert_each_report_once,
    env_int,
    hazard,
    issue_effects,
    record,
    register_riders,
    riders_for,
    wait_for_effects,
)

pytestmark = [pytest.mark.integration]

EVENTS = env_int("MINSHENG_RELIABILITY_LOSS_EVENTS", 60)  # half handled before the loss, half lost with it


def restart_empty(broker: LocalBroker) -> None:
    """Every topic, record and committed offset gone: the log directory deleted, the broker restarted."""
    broker.wipe()
    broker.start()


def issues_consumer(bus: KafkaBus) -> AIOKafkaConsumer:
    return next(c for c in bus.consumers if c._group_id == "issues")


async def report(s: System, riders: list[dict[str, str]], first: int, count: int, tag: str) -> list[str]:
    ids = []
    for i in range(first, first + count):
        r = await s.client.post("/points/hazard-reports", headers=riders[i % len(riders)], json=hazard(i, tag=tag))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    return await run_module("minsheng.cli", *args, env={**os.environ, **env}, seconds=120)


async def test_a_broker_that_comes_back_empty_is_detected_and_outbox_resend_recovers_every_event(
    tmp_path: Path, pg_template: str, own_broker: LocalBroker
) -> None:
    settings = distributed_settings(
        tmp_path,
        pg_template,
        own_broker.bootstrap,
        kafka_topic_partitions=2,
        relay_max_backoff_seconds=1.0,
        kafka_offset_check_seconds=1.0,
    )
    before, lost_batch, after = EVENTS // 2, EVENTS - EVENTS // 2, 5
    async with running_system(settings) as s:
        bus = s.bus
        assert isinstance(bus, KafkaBus)
        issues_url = settings.database_url_for("issues")
        riders = await register_riders(s, riders_for(EVENTS + after), prefix="loss-rider")
        since = datetime.now(UTC)

        handled_ids = await report(s, riders, 0, before, "before")
        effects, _ = await wait_for_effects(issues_url, handled_ids, within=60)
        assert effects["lost"] == 0, "handled (and committed) before the loss"
        await eventually(
            lambda: sum(v for k, v in bus.committed_offsets.items() if k[0] == "issues") >= before, within=60
        )

        # The issues consumer stops fetching (as if slow or down); the broker acknowledges the next reports …
        consumer = issues_consumer(bus)
        consumer.pause(*consumer.assignment())
        lost_ids = await report(s, riders, before, lost_batch, "lost")
        await becomes(lambda: _pending(s), 0, within=60)
        # … and comes back empty: those acknowledged events, the topics and the groups' offsets are gone.
        restart_empty(own_broker)
        restarted_at = time.monotonic()
        consumer.resume(*consumer.assignment())

        # New reports still flow, without restarting anything.
        new_ids = await report(s, riders, EVENTS, after, "after")
        effects, _ = await wait_for_effects(issues_url, new_ids, within=90)
        assert effects["lost"] == 0, "reports written after the broker came back become issues"
        resets = await eventually(
            lambda: sum(v for k, v in bus.offset_resets.items() if k[0] == "issues" and k[3] == "beyond_end"), within=60
        )
        detected_in = time.monotonic() - restarted_at
        # Topics written only before the loss (the riders' registrations) are checked again before the next
        # publish, instead of each costing the relay a request timeout of metadata waits.
        assert bus.kafka_name("points.ledger") not in bus._known_topics
        scraped = (await s.client.get("/metrics")).text
        assert metric(scraped, "minsheng_consumer_offset_resets_total", group="issues", reason="beyond_end") >= 1
        health = (await s.client.get("/healthz")).json()
        assert health["bus"]["up"] is True
        lost_before_resend = (await issue_effects(issues_url, lost_ids))["lost"]
        assert lost_before_resend == lost_batch, "the acknowledged events really were lost with the broker"
        assert (await outbox_status(s.runtime("points").db)).pending == 0, "the outbox thinks they were sent"

        # Recovery: the runbook's command, as an operator runs it (another process, same database).
        duplicates_before_resend = s.runtime("issues").consumer.stats.duplicates
        resend_started = time.monotonic()
        code, out = await cli(
            "outbox",
            "resend",
            "--service",
            "points",
            "--since",
            since.isoformat(),
            env={"MINSHENG_DATABASE_URL": pg_template, "MINSHENG_MODE": "embedded"},
        )
        assert code == 0, out
        resent = int(re.search(r"re-sending (\d+) events", out).group(1))  # type: ignore[union-attr]
        assert resent >= EVENTS + after
        s.runtime("points").db.outbox_signal.set()  # the CLI's process cannot wake this one's relay
        every = [*handled_ids, *lost_ids, *new_ids]
        effects, _ = await wait_for_effects(issues_url, every, within=120)
        recovered_in = time.monotonic() - resend_started
        await becomes(lambda: _pending(s), 0, within=60)
        await asyncio.sleep(2)  # let the re-sent duplicates reach the inbox before counting effects again
        effects = await issue_effects(issues_url, every)
        stats = s.runtime("issues").consumer.stats

        record(
            "broker_data_loss",
            {
                "broker": f"{own_broker.name}, log deleted, restarted empty",
                "events_handled_before": before,
                "events_lost_with_broker": lost_batch,
                "events_after": after,
                "offset_resets_beyond_end": resets,
                "detected_in_seconds": round(detected_in, 1),
                "lost_before_resend": lost_before_resend,
                "resent": resent,
                "recovered_in_seconds": round(recovered_in, 1),
                "consumer_duplicates_absorbed": stats.duplicates,
                "consumer_duplicates_before_resend": duplicates_before_resend,
                **effects,
            },
        )
        assert_each_report_once(effects)
        assert stats.duplicates >= before, "the re-sent events already handled were dropped by the inbox"


async def _pending(s: System) -> int:
    return (await outbox_status(s.runtime("points").db)).pending
