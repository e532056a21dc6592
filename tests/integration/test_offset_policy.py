"""The consumers' offset policy (issue 14) for the other way a log can lose what a group's offsets point at:
retention (or ``kafka-delete-records``) deleted events nobody had read. The committed offset then lies *before*
the log's start; the consumer rewinds to the earliest offset still there, counts it
(``minsheng_consumer_offset_resets_total{reason="before_start"}``) and goes on — it neither stops nor skips
what the log still has. (Offsets *beyond* the log's end, a broker that came back empty, are
``tests/reliability/test_broker_data_loss.py``'s subject.)"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from minsheng.platform.bus.base import Delivery, OutgoingMessage
from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.ids import uuid7
from tests.support.infra import LocalBroker, Tansu, eventually

pytestmark = pytest.mark.integration


def messages(topic: str, first: int, count: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(topic, "one-key", f"{i}".encode()) for i in range(first, first + count)]


async def consume(bus: KafkaBus, group: str, topic: str, seen: list[int]) -> None:
    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.offset)

    await bus.subscribe(group, [topic], handle)


async def test_offsets_before_the_log_start_are_rewound_to_the_earliest_and_counted(
    kafka: tuple[str, LocalBroker | None],
) -> None:
    if isinstance(kafka[1], Tansu):
        pytest.skip("Tansu does not implement DeleteRecords")
    bootstrap = kafka[0]
    prefix = f"op{uuid7().hex[-6:]}."
    topic, group = "offsets.events", "offsets"
    tp = TopicPartition(prefix + topic, 0)

    first = KafkaBus(bootstrap, client_id="offsets-first", partitions=1, prefix=prefix)
    seen: list[int] = []
    try:
        await first.publish(messages(topic, 0, 10))
        await consume(first, group, topic, seen)
        await eventually(lambda: first.committed_offsets.get((prefix + group, tp.topic, 0)) == 10, within=60)
        assert seen == list(range(10)) and not first.offset_resets
    finally:
        await first.stop()  # the group's committed offset on the broker: 10

    # While the group is away, 10 more events arrive and retention deletes the log up to offset 15: five of them
    # (10–14) were never read and are gone.
    producer = KafkaBus(bootstrap, client_id="offsets-producer", partitions=1, prefix=prefix)
    try:
        await producer.publish(messages(topic, 10, 10))
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        low = await admin.delete_records({tp: RecordsToDelete(before_offset=15)})
    finally:
        await admin.close()
    assert low[tp] == 15

    second = KafkaBus(bootstrap, client_id="offsets-second", partitions=1, prefix=prefix, offset_check_seconds=1.0)
    resumed: list[int] = []
    try:
        await consume(second, group, topic, resumed)
        await eventually(lambda: resumed == list(range(15, 20)), within=60)
        resets: dict[Any, int] = dict(second.offset_resets)
        await eventually(lambda: second.committed_offsets.get((prefix + group, tp.topic, 0)) == 20, within=30)
        lag = await second.consumer_lag()
    finally:
        await second.stop()
    assert resets == {(prefix + group, tp.topic, 0, "before_start"): 1}, "rewound once, counted as before_start"
    assert lag == [(prefix + group, tp.topic, 0, 0)]
