"""Poison messages in the middle of one partition (distributed mode, one partition so order is observable):
a handler that keeps failing, an event violating its contract, bytes that are no CloudEvent at all. Each is
dead-lettered (the failing one after N attempts with backoff, the unparseable ones at once) and every good
event around them is handled, in order. The quick in-process version is in tests/integration/test_bus_faults.py;
this one measures how long a poison message holds its partition with the production retry settings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from minsheng.contracts.points import HazardReported
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.ids import utcnow
from minsheng.platform.outbox import outbox_status
from minsheng.settings import Settings
from tests.support.client import System, running_system
from tests.support.infra import becomes
from tests.support.reliability import (
    env_int,
    hazard,
    pg_connect,
    production,
    record,
    register_riders,
    wait_for_effects,
    warm_up,
)
from tests.support.tcpproxy import DurableBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AROUND = env_int("MINSHENG_RELIABILITY_POISON_AROUND", 100)  # good events before and after the poison


async def test_poison_messages_are_dead_lettered_and_the_rest_of_the_partition_flows_in_order(
    durable_broker: DurableBroker, on_durable_broker: Callable[..., Settings]
) -> None:
    settings = on_durable_broker(**production("handler_max_attempts", "handler_retry_base_seconds"))
    async with running_system(settings) as s:
        consumer = s.runtime("issues").consumer
        model, real_handler = consumer.handlers[HazardReported.event_type]
        attempts: list[float] = []
        handled_at: dict[str, float] = {}

        async def failing_on_poison(event: HazardReported, envelope: CloudEvent, uow: Any) -> None:
            if event.description.startswith("poison"):
                attempts.append(time.monotonic())
                raise RuntimeError("this handler cannot cope with the poison")
            await real_handler(event, envelope, uow)
            handled_at[str(event.report_id)] = time.monotonic()

        consumer.handlers[HazardReported.event_type] = (model, failing_on_poison)
        # Several riders: the per-rider rate limit (burst 20) is not what this test is about.
        riders = await register_riders(s, 20, prefix="poison-rider")

        async def report(i: int, **body: Any) -> str:
            r = await s.client.post(
                "/points/hazard-reports", headers=riders[i % len(riders)], json={**hazard(i, tag="poison-run"), **body}
            )
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        before = [await report(i) for i in range(AROUND)]
        poison = await report(AROUND, description="poison: the handler raises on this one")
        producer = AIOKafkaProducer(bootstrap_servers=durable_broker.bootstrap)
        await producer.start()
        try:
            bad = CloudEvent(
                id=uuid.uuid4(),
                source="/services/points",
                type=HazardReported.event_type,
                time=utcnow(),
                partitionkey="contract",
                data={"report_id": "not-a-uuid", "category": "volcano"},
            )
            await producer.send_and_wait("points.hazard", bad.model_dump_json().encode(), key=b"contract")
            await producer.send_and_wait("points.hazard", b"\x00\x01 not json at all", key=b"garbage")
        finally:
            await producer.stop()
        after = [await report(AROUND + 1 + i) for i in range(AROUND)]

        good = before + after
        effects, _ = await wait_for_effects(settings.database_url_for("issues"), good, within=120)
        conn = await pg_connect(settings.database_url_for("issues"))
        try:
            dead = await conn.fetch("SELECT event_type, attempts, error FROM dead_letters ORDER BY created_at")
            order = await conn.fetch(
                "SELECT origin_id FROM issues WHERE origin_kind = 'hazard_report' ORDER BY created_at, id"
            )
        finally:
            await conn.close()

    handled_order = [r["origin_id"] for r in order if r["origin_id"] in set(good)]
    next_good = handled_at.get(after[0], 0.0) if after else 0.0
    held = (max(next_good, attempts[-1]) - attempts[0]) if attempts else 0.0
    record(
        "poison_message",
        {
            "broker": durable_broker.name,
            "good_events": len(good),
            "poison_messages": 3,
            "partitions": 1,
            "handler_max_attempts": settings.handler_max_attempts,
            "handler_retry_base_seconds": settings.handler_retry_base_seconds,
            "poison_attempts": len(attempts),
            "partition_held_by_poison_seconds": round(held, 2),
            "dead_letters": [
                {"type": r["event_type"], "attempts": r["attempts"], "error": r["error"][:80]} for r in dead
            ],
            "good_handled_in_order": handled_order == good,
            **{k: v for k, v in effects.items() if k != "dead_letters"},
        },
    )
    assert effects["lost"] == 0, "every good event around the poison was handled"
    assert effects["duplicate_issues"] == 0
    assert handled_order == good, "the partition's order was kept"
    assert len(attempts) == settings.handler_max_attempts
    assert len(dead) == 3, dead
    failing = [r for r in dead if "cannot cope" in r["error"]]
    assert [r["attempts"] for r in failing] == [settings.handler_max_attempts]
    assert sorted(r["attempts"] for r in dead if r not in failing) == [1, 1], "unparseable: dead-lettered at once"
    assert poison not in handled_at


async def test_a_record_whose_handling_blows_up_is_fetched_again_not_skipped_with_the_rest_of_its_batch(
    on_durable_broker: Callable[..., Settings],
) -> None:
    """Whatever escapes the consumer (here: the dead-letter store failing once) must not make the bus skip
    the record and the rest of the fetched batch — aiokafka has already moved its position past them."""
    settings = on_durable_broker(handler_max_attempts=2)
    async with running_system(settings) as s:
        consumer = s.runtime("issues").consumer
        model, real_handler = consumer.handlers[HazardReported.event_type]
        real_dead_letter = consumer.dead_letter
        failures: list[str] = []

        async def failing_on_poison(event: HazardReported, envelope: CloudEvent, uow: Any) -> None:
            if event.description.startswith("poison"):
                raise RuntimeError("this handler cannot cope with the poison")
            await real_handler(event, envelope, uow)

        async def flaky_dead_letter(delivery: Any, exc: BaseException, attempts: int) -> None:
            if not failures:
                failures.append(str(exc))
                raise RuntimeError("dead-letter store unavailable")
            await real_dead_letter(delivery, exc, attempts)

        consumer.handlers[HazardReported.event_type] = (model, failing_on_poison)
        consumer.dead_letter = flaky_dead_letter  # type: ignore[method-assign]
        # Several riders: the per-rider rate limit (burst 20) is not what this test is about.
        riders = await register_riders(s, 5, prefix="skip-rider")
        await warm_up(s, riders[0], settings.database_url_for("issues"), 0, before="the poison")
        # Pause the issues consumer so that the poison and the reports behind it arrive in one fetched batch.
        kafka_consumer = next(c for c in s.bus.consumers if c._group_id == "issues")  # type: ignore[attr-defined]
        kafka_consumer.pause(*kafka_consumer.assignment())
        ids = []
        for i in range(1, 30):
            body = {**hazard(i, tag="batch"), **({"description": "poison in a batch"} if i == 5 else {})}
            r = await s.client.post("/points/hazard-reports", headers=riders[i % len(riders)], json=body)
            assert r.status_code == 201, r.text
            if i != 5:
                ids.append(str(r.json()["id"]))
        await becomes(lambda: pending(s), 0, within=30)
        kafka_consumer.resume(*kafka_consumer.assignment())
        effects, _ = await wait_for_effects(settings.database_url_for("issues"), ids, within=60)
        conn = await pg_connect(settings.database_url_for("issues"))
        try:
            dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
        finally:
            await conn.close()
    assert failures, "the dead-letter store failed once"
    assert effects["lost"] == 0, "no record behind the failure was skipped"
    assert effects["duplicate_issues"] == 0
    assert dead == 1, "the poison was dead-lettered on the second try"


async def pending(s: System) -> int:
    return (await outbox_status(s.runtime("points").db)).pending
