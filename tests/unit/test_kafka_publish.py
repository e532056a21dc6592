"""When the Kafka bus keeps its idempotent producer and when it starts a fresh one (issue 14), with a fake producer:

- a publish that fails before any batch was handed over keeps the producer (its id and sequence numbers);
- a batch the producer accepted and then failed spends its sequence numbers: the producer is replaced, and
  only the records not acknowledged are sent again, by the new producer, in their order;
- a producer the broker fenced or no longer knows is replaced, and the publish fails when no round progresses;
- a broker that does not answer within the patience fails the publish (the relay's claim is not held open
  through a long outage), and the producer with the unanswered batches is replaced.

The real broker's side (a pause and a restart, every record once) is tests/reliability/test_idempotent_producer.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError, OutOfOrderSequenceNumber

from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.kafka import KafkaBus

TOPIC = "points.hazard"


class FakeBatch:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: Any, headers: Any) -> object | None:
        if len(self.keys) == 2:  # two records a batch: several batches per partition
            return None
        self.keys.append(key)
        return object()


class FakeProducer:
    def __init__(
        self,
        fail: dict[int, BaseException] | None = None,
        metadata_error: Exception | None = None,
        silent: set[int] | None = None,
    ) -> None:
        self.fail = fail or {}  # partition -> the error its batches fail with
        self.silent = silent or set()  # partitions whose batches the broker never answers
        self.metadata_error = metadata_error
        self.written: list[bytes] = []
        self.stopped = False

    async def partitions_for(self, topic: str) -> set[int]:
        if self.metadata_error is not None:
            raise self.metadata_error
        return {0, 1}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if partition in self.silent:
            pass  # in flight until the producer is stopped
        elif partition in self.fail:
            future.set_exception(self.fail[partition])
        else:
            self.written.extend(batch.keys)
            future.set_result(None)
        return future

    async def stop(self) -> None:
        self.stopped = True


class Bus(KafkaBus):
    """A KafkaBus whose producers are the fakes given, in order."""

    def __init__(self, *producers: FakeProducer, patience: float = 120.0) -> None:
        super().__init__("127.0.0.1:1", publish_patience_seconds=patience)
        self.fakes = list(producers)
        self.started: list[FakeProducer] = []

    async def ensure_topics(self, topics: Any) -> None:
        self._known_topics.update(topics)  # no admin client: the topics exist

    async def _ensure_producer(self) -> Any:
        if self._producer is None:
            self._producer = self.fakes.pop(0)  # type: ignore[assignment]
            self.started.append(self._producer)  # type: ignore[arg-type]
        return self._producer


def messages(n: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(TOPIC, f"k{i}", b"{}") for i in range(n)]


async def test_a_failure_before_any_batch_is_handed_over_keeps_the_producer() -> None:
    first = FakeProducer(metadata_error=KafkaTimeoutError())
    bus = Bus(first)
    with pytest.raises(KafkaTimeoutError):
        await bus.publish(messages(4))
    assert bus._producer is first and not first.stopped and bus.started == [first]
    assert TOPIC not in bus._known_topics, "the topics are checked again (a broker that came back empty)"
    assert not bus.health()["up"]


async def test_a_failed_batch_replaces_the_producer_and_only_unacknowledged_records_are_sent_again() -> None:
    first = FakeProducer(fail={1: NotLeaderForPartitionError()})
    second = FakeProducer()
    bus = Bus(first, second)
    sent = messages(12)
    await bus.publish(sent)
    assert first.stopped and bus._producer is second
    assert sorted(first.written + second.written) == sorted(m.key.encode() for m in sent), "each record once"
    assert not set(first.written) & set(second.written)
    order = [m.key.encode() for m in sent]
    assert second.written == [k for k in order if k in second.written], "the rest in their order"
    assert bus.health()["up"]


async def test_a_fenced_or_forgotten_producer_is_replaced_and_no_progress_fails_the_publish() -> None:
    first = FakeProducer(fail={0: OutOfOrderSequenceNumber(), 1: OutOfOrderSequenceNumber()})
    second = FakeProducer()
    bus = Bus(first, second)
    with pytest.raises(OutOfOrderSequenceNumber):
        await bus.publish(messages(6))
    assert first.stopped and bus._producer is None, "the next publish starts a fresh producer"
    await bus.publish(messages(6))  # the relay's next attempt
    assert bus._producer is second and len(second.written) == 6


async def test_a_broker_that_does_not_answer_within_the_patience_fails_the_publish_and_replaces_the_producer() -> None:
    first = FakeProducer(silent={0, 1})
    second = FakeProducer()
    bus = Bus(first, second, patience=0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(KafkaTimeoutError, match="no acknowledgement from the broker"):
        await bus.publish(messages(6))
    assert asyncio.get_running_loop().time() - started < 5, "bounded by the patience, not the outage"
    assert first.stopped and bus._producer is None, "the unanswered batches' producer is not used again"
    assert not bus.health()["up"]
    await bus.publish(messages(6))  # the relay's next attempt, once the broker answers
    assert bus._producer is second and len(second.written) == 6
