"""Issue 14: the relay's idempotent producer (``enable_idempotence``), with retries across a broker pause and a
broker restart, writes every record to the topic exactly once.

The relay sends one claim of outbox rows in many record batches per partition (small ``max_batch_bytes``), so
batches are in flight, queued behind them and still waiting to be handed over when the broker goes away:

1. the broker is frozen (SIGSTOP) for longer than the request timeout: produce requests reach its socket
   but are not answered, time out on the client and are retried; when it thaws it answers the first request
   and the retries of the same batch (same producer id and sequence numbers) are recognised as duplicates;
2. the broker is SIGKILLed while the relay publishes and restarted on its log a few seconds later: the batches
   are retried by the same producer, whose id and sequence numbers the restarted broker still knows.

Each time the publish waits for the broker instead of failing, the producer is not replaced, the relay marks
every row sent, and reading the topic back finds each row once. Apache Kafka only (Tansu cannot be frozen
or killed without losing its memory-only log).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
import sqlalchemy as sa

from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.outbox import OutboxRelay, outbox_status
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.tasks import cancel_all
from tests.support.infra import becomes
from tests.support.reliability import topic_copies
from tests.support.tcpproxy import DurableBroker

pytestmark = [pytest.mark.integration]

ROWS_PER_ROUND = 120  # ~1 KB each, 4 KiB record batches: ~15 batches per partition in one claim
REQUEST_TIMEOUT_MS = 1500


async def _write(points_runtime: ServiceRuntime, topic: str, tag: str, count: int) -> list[str]:
    ids = [uuid7() for _ in range(count)]
    now = utcnow()
    async with points_runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.insert(points_runtime.db.tables.outbox),
            [
                {
                    "id": id_,
                    "type": "test.idempotent",
                    "created_at": now,
                    "topic": topic,
                    "key": f"aggregate-{i % 6}",
                    "payload": json.dumps({"tag": tag, "seq": i, "pad": "x" * 1000}),
                    "headers": {"ce_id": str(id_)},
                }
                for i, id_ in enumerate(ids)
            ],
        )
    return [str(i) for i in ids]


async def _drained(points_runtime: ServiceRuntime, within: float) -> None:
    async def pending() -> int:
        return (await outbox_status(points_runtime.db)).pending

    await becomes(pending, 0, within=within)


def _freeze(broker: DurableBroker, sig: signal.Signals) -> None:
    proc: Any = getattr(broker.broker, "proc", None)
    assert proc is not None
    os.kill(proc.pid, sig)


async def test_relay_retries_across_a_broker_pause_and_restart_write_each_record_once(
    points_runtime: ServiceRuntime, durable_broker: DurableBroker
) -> None:
    if durable_broker.proxy is not None:
        pytest.skip("needs Apache Kafka (the default): a broker process to freeze and restart on its log")
    topic = f"relay.idempotent.{uuid7().hex[:8]}"
    bus = KafkaBus(
        durable_broker.bootstrap,
        client_id="relay-idempotent",
        partitions=2,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        max_batch_bytes=4096,
        max_backoff_seconds=1.0,
        idempotent_producer=True,
    )
    relay = OutboxRelay(points_runtime.db, bus, batch_size=500, poll_seconds=0.2, max_backoff_seconds=1.0)
    written: list[str] = []
    task: asyncio.Task[None] | None = None
    try:
        await bus.start()
        written += await _write(points_runtime, topic, "warm-up", 1)
        assert await relay.drain() == 1  # the topic exists, the producer has its id
        producer = bus._producer
        assert producer is not None
        task = asyncio.create_task(relay.run())

        # 1. frozen: requests reach the broker's socket, are not answered, time out and are retried
        await asyncio.to_thread(_freeze, durable_broker, signal.SIGSTOP)
        try:
            written += await _write(points_runtime, topic, "frozen", ROWS_PER_ROUND)
            await asyncio.sleep(2.5 * REQUEST_TIMEOUT_MS / 1000)  # past the request timeout: retries are sent
            assert not bus.health()["up"], "the relay's publish is waiting for the broker"
        finally:
            await asyncio.to_thread(_freeze, durable_broker, signal.SIGCONT)
        await _drained(points_runtime, within=30)
        assert bus._producer is producer, "the producer (its id and sequence numbers) survived the pause"

        # 2. SIGKILLed while the relay publishes, restarted on its log
        written += await _write(points_runtime, topic, "restart", ROWS_PER_ROUND)
        await asyncio.sleep(0.05)  # the relay has claimed the rows and handed batches to the producer
        await asyncio.to_thread(durable_broker.kill)
        await asyncio.sleep(2 * REQUEST_TIMEOUT_MS / 1000)
        assert not bus.health()["up"], "the relay's publish is waiting for the broker"
        await asyncio.to_thread(durable_broker.start)  # ~10 s here: the JVM, then the log's recovery
        await _drained(points_runtime, within=60)
        assert bus._producer is producer, "the producer (its id and sequence numbers) survived the restart"
        assert relay.failures == 0, "the publish waited for the broker rather than failing"
    finally:
        if task is not None:
            await cancel_all([task])
        await bus.stop()

    copies = await topic_copies(durable_broker.bootstrap, topic)
    assert len(written) == 1 + 2 * ROWS_PER_ROUND
    assert [i for i in written if copies.get(i, 0) == 0] == [], "every acknowledged row is on the topic"
    twice = {i: n for i, n in copies.items() if n > 1}
    assert twice == {}, f"{len(twice)} records on the topic more than once (idempotent producer)"
    assert set(copies) == set(written)
