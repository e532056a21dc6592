"""Faults on the real transport: the broker goes away, an event arrives twice, a handler keeps failing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from minsheng.contracts.points import HazardReported
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.outbox import outbox_status
from minsheng.settings import Settings
from tests.conftest import distributed_settings
from tests.support.client import System, running_system
from tests.support.infra import LocalBroker, becomes, eventually
from tests.support.tcpproxy import DurableBroker
from tests.unit.test_fire_flow import FIRE, register_rider

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, pg_template: str, bootstrap: str, **extra: Any) -> Settings:
    return distributed_settings(tmp_path, pg_template, bootstrap, relay_max_backoff_seconds=1.0, **extra)


async def _issue_count(s: System) -> int:
    async with s.runtime("issues").db.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM issues"))).scalar_one())


def _elsewhere(n: int) -> dict[str, Any]:
    """The fire report ``n`` km north: far enough not to be attached to another report's issue."""
    return {**FIRE, "latitude": FIRE["latitude"] + n * 0.01, "description": f"fire #{n}"}


@pytest.fixture
async def own_broker() -> AsyncIterator[DurableBroker]:
    """A broker of this test's own, so taking it away disturbs nobody else (see :class:`DurableBroker`)."""
    broker = DurableBroker()
    broker.open()
    yield broker
    broker.close()


async def test_events_written_while_the_broker_is_down_all_arrive_after_it_returns(
    tmp_path: Path, pg_template: str, own_broker: DurableBroker
) -> None:
    async with running_system(_settings(tmp_path, pg_template, own_broker.bootstrap)) as s:
        rider = await register_rider(s)
        r = await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)
        assert r.status_code == 201
        await becomes(lambda: _issue_count(s), 1, within=30)  # the consumer groups are up

        riders = [rider, *[await register_rider(s, sub=f"rider-{n}") for n in range(4)]]  # under rate limits
        own_broker.stop()
        written = 25
        for i in range(written):
            r = await s.client.post("/points/hazard-reports", headers=riders[i % 5], json=_elsewhere(i + 1))
            assert r.status_code == 201, r.text  # residents are never refused because the broker is away
        status = await outbox_status(s.runtime("points").db)
        assert status.pending >= written - 1  # at most one batch may have been in flight

        own_broker.start()
        await becomes(lambda: _issue_count(s), written + 1, within=60)
        assert (await outbox_status(s.runtime("points").db)).pending == 0


async def test_the_same_event_delivered_twice_has_one_effect(
    tmp_path: Path, pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    async with running_system(_settings(tmp_path, pg_template, kafka[0])) as s:
        rider = await register_rider(s)
        report = (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).json()
        await becomes(lambda: _issue_count(s), 1, within=30)

        async with s.runtime("points").db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT payload, key FROM outbox WHERE type = :t"), {"t": HazardReported.event_type}
                )
            ).one()
        envelope = CloudEvent.model_validate_json(row.payload)
        assert str(envelope.data["report_id"]) == report["id"]

        producer = AIOKafkaProducer(bootstrap_servers=kafka[0])
        await producer.start()
        try:
            for _ in range(2):  # a producer retry and a relay re-send after a crash look exactly like this
                await producer.send_and_wait("points.hazard", row.payload.encode(), key=row.key.encode())
        finally:
            await producer.stop()

        consumer = s.runtime("issues").consumer
        await eventually(lambda: consumer.stats.duplicates >= 2, within=30)
        assert await _issue_count(s) == 1


async def test_a_handler_that_always_fails_is_dead_lettered_and_later_events_still_flow(
    tmp_path: Path, pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    settings = _settings(tmp_path, pg_template, kafka[0], handler_max_attempts=3)
    async with running_system(settings) as s:
        consumer = s.runtime("issues").consumer
        model, real_handler = consumer.handlers[HazardReported.event_type]
        calls: list[str] = []

        async def flaky(event: HazardReported, envelope: CloudEvent, uow: Any) -> None:
            if event.description == "poison":
                calls.append(str(envelope.id))
                raise RuntimeError("this handler cannot cope")
            await real_handler(event, envelope, uow)

        consumer.handlers[HazardReported.event_type] = (model, flaky)
        rider = await register_rider(s)
        await s.client.post("/points/hazard-reports", headers=rider, json={**_elsewhere(1), "description": "poison"})
        await s.client.post("/points/hazard-reports", headers=rider, json={**_elsewhere(2), "description": "after"})

        await becomes(lambda: _issue_count(s), 1, within=30)  # the later event was not blocked
        assert len(calls) == 3  # N attempts, then dead-lettered
        async with s.runtime("issues").db.engine.connect() as conn:
            dead = (await conn.execute(sa.text("SELECT attempts, error, topic FROM dead_letters"))).one()
        assert dead.attempts == 3 and "cannot cope" in dead.error and dead.topic == "points.hazard"

        dlq = AIOKafkaConsumer(
            "issues.dlq",
            bootstrap_servers=kafka[0],
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
        )
        await dlq.start()
        try:
            batch = await dlq.getmany(timeout_ms=10_000)
            records = [r for rs in batch.values() for r in rs]
        finally:
            await dlq.stop()
        assert records, "the dead letter reached the issues.dlq topic"
        headers = dict(records[-1].headers)
        assert b"cannot cope" in headers["dlq_error"]
        assert json.loads(records[-1].value)["data"]["description"] == "poison"

        # Fixed handler, replay: the event is handled once.
        consumer.handlers[HazardReported.event_type] = (model, real_handler)
        outcomes = await consumer.replay_dead_letters()
        assert [o for _, o in outcomes] == ["handled"]
        assert await _issue_count(s) == 2
        assert await consumer.replay_dead_letters() == []  # nothing left to replay
