"""The relay's PostgreSQL path (raw asyncpg claim and mark-sent) and its batches on a real broker:

- the bytes it sends are the stored ones: payload as written (not re-encoded), every header;
- a broker error in the middle of a drain leaves exactly the rows of the unacknowledged batches unsent;
- a batch spanning several partitions keeps each key's order, in record batches of one produce request each.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.outbox import OutboxRelay
from minsheng.platform.service import ServiceRuntime
from tests.support.buses import RecordingBus

pytestmark = pytest.mark.integration


class FailingBus(RecordingBus):
    """Acknowledges the first ``good`` batches, then refuses every batch (a broker that went away)."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good
        self.batches: list[list[OutgoingMessage]] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if len(self.batches) >= self.good:
            raise ConnectionError("broker gone")
        self.batches.append(list(messages))
        await super().publish(messages)


async def _write(points_runtime: ServiceRuntime, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    async with points_runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.insert(points_runtime.db.tables.outbox),
            [{"id": uuid7(), "type": "x", "created_at": now, **r} for r in rows],
        )


async def _sent_keys(points_runtime: ServiceRuntime) -> list[str]:
    t = points_runtime.db.tables.outbox
    async with points_runtime.db.engine.connect() as conn:
        return list((await conn.execute(sa.select(t.c.key).where(t.c.sent_at.is_not(None)))).scalars())


async def test_the_relay_sends_the_stored_payload_bytes_and_every_header(points_runtime: ServiceRuntime) -> None:
    payload = json.dumps({"description": "垃圾桶着火了 — 剧院西门", "n": 1}, ensure_ascii=False)
    headers = {"ce_type": "minsheng.points.hazard.reported.v1", "ce_id": "abc", "content-type": "x", "traceparent": "t"}
    await _write(
        points_runtime,
        [
            {"topic": "points.hazard", "key": "k1", "payload": payload, "headers": headers},
            {"topic": "points.hazard", "key": "k2", "payload": "{}", "headers": {}},
        ],
    )
    bus = FailingBus(good=10)
    assert await OutboxRelay(points_runtime.db, bus).publish_pending() == 2
    first, second = bus.batches[0]
    assert (first.topic, first.key, first.value) == ("points.hazard", "k1", payload.encode())
    # jsonb keeps its own key order (as the SQLAlchemy path read it before): every header, each value intact
    assert sorted(first.headers) == sorted((k, v.encode()) for k, v in headers.items())
    assert (second.key, second.value, second.headers) == ("k2", b"{}", [])


async def test_a_broker_error_mid_drain_leaves_exactly_the_unacknowledged_rows_unsent(
    points_runtime: ServiceRuntime,
) -> None:
    keys = [f"k{i:04d}" for i in range(230)]
    await _write(points_runtime, [{"topic": "points.hazard", "key": k, "payload": "{}", "headers": {}} for k in keys])
    bus = FailingBus(good=2)
    relay = OutboxRelay(points_runtime.db, bus, batch_size=50)
    with pytest.raises(ConnectionError):
        await relay.drain()
    acknowledged = [m.key for batch in bus.batches for m in batch]
    assert acknowledged == keys[:100]
    assert sorted(await _sent_keys(points_runtime)) == keys[:100], "sent_at on exactly the acknowledged rows"
    # Nothing stays claimed: the next relay sends the rest, in order, once.
    retry = FailingBus(good=100)
    assert await OutboxRelay(points_runtime.db, retry, batch_size=50).drain() == 130
    assert [m.key for batch in retry.batches for m in batch] == keys[100:]


async def test_a_batch_spanning_partitions_keeps_each_keys_order(kafka: tuple[str, Any]) -> None:
    bootstrap = kafka[0]
    topic = f"relay.order.{uuid7().hex[:8]}"
    bus = KafkaBus(bootstrap, client_id="relay-order", partitions=3)
    keys = [f"aggregate-{i}" for i in range(7)]
    pad = "x" * 900
    messages = [OutgoingMessage(topic, keys[i % 7], json.dumps({"seq": i, "pad": pad}).encode()) for i in range(400)]
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    try:
        await bus.start()
        await bus.publish(messages[:200])  # ~200 KB: one record batch per partition, not ~13 of 16 KiB
        await bus.publish(messages[200:])
        await consumer.start()
        seen: dict[str, list[int]] = {}
        partition_of: dict[str, set[int]] = {}
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < len(messages):
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for rec in records:
                        key = rec.key.decode()
                        seen.setdefault(key, []).append(json.loads(rec.value)["seq"])
                        partition_of.setdefault(key, set()).add(tp.partition)
    finally:
        await consumer.stop()
        await bus.stop()
    assert all(len(p) == 1 for p in partition_of.values()), "one partition per key"
    assert len({p for ps in partition_of.values() for p in ps}) > 1, "the batch spanned partitions"
    for i, key in enumerate(keys):
        assert seen[key] == list(range(i, len(messages), len(keys))), f"{key} in order"


async def test_the_relay_on_a_broker_sends_the_stored_rows_as_columns_in_each_keys_order(
    points_runtime: ServiceRuntime, kafka: tuple[str, Any]
) -> None:
    """The PostgreSQL claim (one row of arrays) straight into record batches: every payload byte and header
    of every row, rows without headers among them, each key on one partition in the rows' order."""
    topic = f"relay.columns.{uuid7().hex[:8]}"
    keys = [f"aggregate-{i}" for i in range(5)]
    rows: list[dict[str, Any]] = [
        {
            "topic": topic,
            "key": keys[i % 5],
            "payload": json.dumps({"seq": i, "where": "云泰园"}, ensure_ascii=False),
            "headers": {"ce_type": "t", "ce_id": f"id-{i}", "traceparent": "tp"} if i % 4 else {},
        }
        for i in range(120)
    ]
    await _write(points_runtime, rows)
    bus = KafkaBus(kafka[0], client_id="relay-columns", partitions=3)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka[0], auto_offset_reset="earliest", group_id=None)
    received: list[Any] = []
    try:
        await bus.start()
        assert await OutboxRelay(points_runtime.db, bus, batch_size=50).drain() == 120
        await consumer.start()
        async with asyncio.timeout(30):
            while len(received) < len(rows):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received.extend(records)
    finally:
        await consumer.stop()
        await bus.stop()
    assert sorted(await _sent_keys(points_runtime)) == sorted(r["key"] for r in rows)
    by_seq = {json.loads(rec.value)["seq"]: rec for rec in received}
    assert sorted(by_seq) == list(range(120)), "each row once"
    for seq, rec in by_seq.items():
        row = rows[seq]
        assert (rec.key.decode(), rec.value) == (row["key"], row["payload"].encode())
        assert sorted((k, bytes(v)) for k, v in rec.headers) == sorted(
            (k, v.encode()) for k, v in row["headers"].items()
        )
    for key in keys:
        mine = [rec for rec in received if rec.key.decode() == key]
        assert len({rec.partition for rec in mine}) == 1, "one partition per key"
        assert [json.loads(rec.value)["seq"] for rec in sorted(mine, key=lambda r: r.offset)] == [
            seq for seq in range(120) if rows[seq]["key"] == key
        ], f"{key} in order"
    assert len({rec.partition for rec in received}) > 1, "the batches spanned partitions"
