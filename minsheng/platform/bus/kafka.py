"""The Kafka transport (aiokafka). Structured-mode CloudEvents; offsets committed after the handler's
transaction; the producer waits for acks from all in-sync replicas and is idempotent (its own retries after a
lost acknowledgement write a record once). No Kafka transactions: correctness comes from the outbox and the
inbox, the idempotent producer only keeps duplicates off the topic.

Operations it must survive (docs/operations.md → "the broker lost data"):

- **A prefix** (``MINSHENG_KAFKA_PREFIX``) is put in front of every topic, dead-letter topic and consumer group
  here, and only here: the rest of the system (outbox rows, dead letters, handlers) sees the plain names.
- **Offsets the log no longer has.** A broker that came back empty (or truncated a log) leaves this process's
  positions and committed offsets beyond the log's end; retention can leave them before its start. The policy:
  rewind that partition to the earliest offset still in the log — the inbox drops what was handled already —
  and count it in ``offset_resets`` (``minsheng_consumer_offset_resets_total``, alert
  ``MinshengConsumerOffsetReset``). Detected on fetch (``OffsetOutOfRangeError``: the consumer runs with
  ``auto_offset_reset="none"`` so aiokafka does not reset silently) and by comparing positions and the offsets
  this process committed with the log's end offsets on every assignment and every ``offset_check_seconds``.
- **Broker health** is tracked from real contacts (acknowledged publishes, commits, metadata answers):
  ``up`` and ``last_contact`` feed ``/healthz`` and the metrics, never readiness.
- **One producer across outages** (docs/reliability.md → "the idempotent producer"): the broker deduplicates
  a retried batch by the producer's id and the batch's sequence numbers, so a publish never gives up on a
  batch the producer has accepted (``_produce`` waits for every one of them, and keeps handing over the rest
  while the ones ahead wait for the broker), and a failed publish keeps the producer. It is replaced only when
  it cannot go on: a batch it accepted failed for good (its sequence numbers are spent: aiokafka cannot rewind
  them, and the broker would refuse the next ones as out of order), or the broker fenced or forgot its id (a
  broker that lost its state). A record of a failed batch may then be on the topic already and is written
  again by the next producer: the remaining window, which the consumers' inboxes absorb.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from minsheng.platform.bus.base import MessageHandler, OutgoingColumns, OutgoingMessage
from minsheng.platform.bus.kafka_consumer import GroupConsumer
from minsheng.platform.bus.partitioner import default_partition
from minsheng.platform.tasks import SHUTDOWN_TIMEOUT_SECONDS, cancel_all, within

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = SHUTDOWN_TIMEOUT_SECONDS


async def _bounded_stop(client: AIOKafkaConsumer | AIOKafkaProducer, what: str) -> None:
    """Stop a client, but never wait on it forever: aiokafka's ``stop()`` can wait without end for a coordinator
    or a batch that no broker will answer, which would hold a pod in Terminating (and a test run) indefinitely.
    Whatever it had not finished is safe: the outbox resends unsent rows, the inbox drops redelivered events."""
    try:
        await within(STOP_TIMEOUT_SECONDS, client.stop())
    except TimeoutError:
        log.warning("Kafka %s did not stop within %.0f s; abandoned", what, STOP_TIMEOUT_SECONDS)
    except Exception as exc:  # a client that fails while stopping is stopped as far as we are concerned
        log.debug("Kafka %s stop raised %r", what, exc)


DLQ_SUFFIX = ".dlq"
# A relay batch (200 CloudEvents of ~1 KB) fits one record batch per partition, so one produce request and
# one broker round trip; aiokafka's default (16 KiB) split it into ~25 batches, which the idempotent producer
# sends one after another (one in flight per partition). Below the broker's default message.max.bytes (1 MiB)
# and the producer's max_request_size.
MAX_BATCH_BYTES = 512 * 1024
OFFSET_RESET_REASONS = ("beyond_end", "before_start", "out_of_range")
# Errors after which a producer cannot go on: the broker fenced its id or no longer knows it (a broker that lost
# its state), its sequence numbers and the broker's disagree, or the producer itself is closed or broken.
PRODUCER_BROKEN = (
    ProducerFenced,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    UnknownProducerId,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    IllegalStateError,
)
# A publish retries the records not yet acknowledged at once, with the same or a fresh producer, as long as it
# makes progress; then it fails and the relay backs off and sends its whole claim again.
PUBLISH_ROUNDS = 3


class _Unacknowledged(Exception):
    """``_produce`` failed after handing batches to the producer: ``acknowledged`` are the indexes the broker
    acknowledged; ``spent`` is true when a batch the producer had accepted failed (its sequence numbers are
    used up, so the producer must be replaced)."""

    def __init__(self, error: BaseException, acknowledged: set[int], spent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.acknowledged = acknowledged
        self.spent = spent


def _outcome(future: asyncio.Future[object], patience: float) -> object:
    """A handed-over batch's outcome: its result, its error, or — no answer within the patience — a timeout."""
    if not future.done():
        return KafkaTimeoutError(f"no acknowledgement from the broker within {patience:.0f} s")
    if future.cancelled():
        return KafkaTimeoutError("the batch was cancelled")
    return future.exception() or future.result()


def topic_partitions(topic: str, partitions: int) -> int:
    """Partitions a topic is created with, by services and by the topic job alike: dead-letter topics need no
    parallelism (one partition keeps them in order); event topics get ``MINSHENG_KAFKA_TOPIC_PARTITIONS``."""
    return 1 if topic.endswith(DLQ_SUFFIX) else partitions


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "minsheng",
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 500,
        partitions: int = 6,
        replication_factor: int = 1,
        request_timeout_ms: int = 10_000,
        prefix: str = "",
        offset_check_seconds: float = 30.0,
        max_backoff_seconds: float = 10.0,
        idempotent_producer: bool = True,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        publish_patience_seconds: float = 120.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.request_timeout_ms = request_timeout_ms
        self.prefix = prefix
        self.offset_check_seconds = offset_check_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.idempotent_producer = idempotent_producer
        self.max_batch_bytes = max_batch_bytes
        self.publish_patience_seconds = publish_patience_seconds
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._known_topics: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.consumers: list[AIOKafkaConsumer] = []
        # (group, topic, partition) -> the offset committed after handling; read by metrics only
        self.committed_offsets: dict[tuple[str, str, int], int] = {}
        # (group, topic, partition, reason) -> how often the partition was rewound to the log's start
        self.offset_resets: dict[tuple[str, str, int, str], int] = {}
        # Broker health from real contacts: None until the first one.
        self.up: bool | None = None
        self.last_contact: float | None = None  # time.time() of the last successful contact
        self.last_error: str | None = None

    # --- names ---------------------------------------------------------------------------------------------

    def kafka_name(self, name: str) -> str:
        """The name of a topic or consumer group on the cluster."""
        return self.prefix + name

    def plain_name(self, name: str) -> str:
        return name[len(self.prefix) :] if self.prefix and name.startswith(self.prefix) else name

    # --- health --------------------------------------------------------------------------------------------

    def note_contact(self) -> None:
        self.up = True
        self.last_contact = time.time()
        self.last_error = None

    def forget_topics(self) -> None:
        """Check every topic again before the next publish (a broker that lost data may have lost topics)."""
        self._known_topics.clear()

    def _lost(self, exc: BaseException) -> None:
        self.up = False
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows: no network call, so it answers at once while the broker is away."""
        age = round(time.time() - self.last_contact, 1) if self.last_contact is not None else None
        return {"up": bool(self.up), "last_contact_age_seconds": age, "last_error": self.last_error}

    async def start(self) -> None:
        try:
            await self._ensure_producer()
        except KafkaError as exc:  # not fatal: the relay backs off and retries; readiness does not depend on it
            self._lost(exc)
            log.warning("Kafka not reachable at start (%s); will retry", exc)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        for consumer in self.consumers:
            await _bounded_stop(consumer, "consumer")
        self.consumers.clear()
        if self._producer is not None:
            await _bounded_stop(self._producer, "producer")
            self._producer = None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=self.idempotent_producer,
                    linger_ms=1,
                    max_batch_size=self.max_batch_bytes,
                    request_timeout_ms=self.request_timeout_ms,
                )
                try:
                    await producer.start()
                except BaseException:
                    with suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
                self.note_contact()
            return self._producer

    async def _drop_producer(self) -> None:
        async with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _bounded_stop(producer, "producer")

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create missing topics (names on the cluster, i.e. prefixed) with the topic job's partition count
        (``topic_partitions``): the topic job and a service that starts first must agree."""
        missing = [t for t in topics if t not in self._known_topics]
        if not missing:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self.request_timeout_ms,
        )
        await admin.start()
        try:
            new = [NewTopic(t, topic_partitions(t, self.partitions), self.replication_factor) for t in missing]
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            self._known_topics.update(missing)
        finally:
            await admin.close()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` and return once the broker acknowledged every one (acks=all)."""
        if messages:
            await self._publish_or_reset(
                [m.topic for m in messages],
                [m.key.encode() for m in messages],
                [m.value for m in messages],
                [m.headers for m in messages],
            )

    async def publish_columns(self, columns: OutgoingColumns) -> None:
        """``publish`` for messages as columns (the outbox relay's claim on PostgreSQL): the same records,
        without a message object per message."""
        if len(columns):
            await self._publish_or_reset(columns.topics, columns.keys, columns.values, columns.headers())

    async def _publish_or_reset(
        self, topics: list[str], keys: list[bytes], values: list[bytes], headers: list[list[tuple[str, bytes]]]
    ) -> None:
        pending = list(range(len(topics)))
        for round_ in range(1, PUBLISH_ROUNDS + 1):
            try:
                await self._produce(topics, keys, values, headers, pending)
            except _Unacknowledged as exc:
                await self._failed(exc.error, topics, replace=exc.spent)
                progress = [i for i in pending if i in exc.acknowledged]
                pending = [i for i in pending if i not in exc.acknowledged]
                if not progress or round_ == PUBLISH_ROUNDS:
                    # Acknowledged records of this publish are sent again with the rest (the relay's claim is
                    # all or nothing): duplicates on the topic, which the consumers' inboxes drop.
                    raise exc.error from None
                continue
            except Exception as exc:  # before any batch was handed over: nothing of this publish is in flight
                await self._failed(exc, topics, replace=False)
                raise
            self.note_contact()
            return

    async def _failed(self, exc: BaseException, topics: list[str], *, replace: bool) -> None:
        self._lost(exc)
        # A broker that came back empty has lost the topics too: check (and create) them again next time.
        self._known_topics.difference_update(self.kafka_name(t) for t in set(topics))
        if replace or isinstance(exc, PRODUCER_BROKEN):
            # The remaining window of the idempotent producer: a fresh producer id, whose sequence numbers
            # start again, so a record the broker wrote for a failed batch is written again when re-sent.
            log.warning("Kafka producer replaced after %s: %s", type(exc).__name__, exc)
            await self._drop_producer()

    async def _produce(
        self,
        topics: list[str],
        keys: list[bytes],
        values: list[bytes],
        headers: list[list[tuple[str, bytes]]],
        only: list[int] | None = None,
    ) -> None:
        """Messages are partitioned exactly as ``producer.send`` would (the default murmur2 partitioner on the
        key, so one aggregate stays on one partition, in order) and packed into record batches per partition
        with ``create_batch``/``send_batch``: one future per batch instead of one per message, which roughly
        halves the producer's CPU per message on the relay's hot path. ``only``: these indexes (in order).

        Returns once the broker acknowledged every batch. Raises ``_Unacknowledged`` when a batch handed to the
        producer failed or a later one could not be handed over — but only after every batch handed over has
        an outcome: none is left in flight, to be written by this producer while the caller sends its records
        again (and the idempotent producer retries a batch until the broker answers, across an outage)."""
        producer = await self._ensure_producer()
        names = {t: self.kafka_name(t) for t in set(topics)}
        await self.ensure_topics(sorted(names.values()))
        partitions = {t: list(await producer.partitions_for(name)) for t, name in names.items()}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_patience_seconds
        groups: dict[tuple[str, int], list[int]] = {}
        for i in range(len(topics)) if only is None else only:
            topic = topics[i]
            partition = default_partition(keys[i], partitions[topic])
            group = groups.get((topic, partition))
            if group is None:
                groups[(topic, partition)] = group = []
            group.append(i)
        handed: list[tuple[list[int], asyncio.Future[object]]] = []
        error: BaseException | None = None
        try:
            for (topic, partition), indexes in groups.items():
                name = names[topic]
                ahead: list[asyncio.Future[object]] = []
                batch = producer.create_batch()
                in_batch: list[int] = []
                for i in indexes:
                    if batch.append(key=keys[i], value=values[i], timestamp=None, headers=headers[i]) is None:
                        ahead.append(await self._hand_over(producer, batch, name, partition, ahead, deadline))
                        handed.append((in_batch, ahead[-1]))
                        batch, in_batch = producer.create_batch(), []
                        # A fresh batch takes any one message (an oversized one is the broker's to refuse).
                        batch.append(key=keys[i], value=values[i], timestamp=None, headers=headers[i])
                    in_batch.append(i)
                ahead.append(await self._hand_over(producer, batch, name, partition, ahead, deadline))
                handed.append((in_batch, ahead[-1]))
        except Exception as exc:
            error = exc
        if handed:  # waiting without cancelling: the futures are the producer's own
            await asyncio.wait([f for _, f in handed], timeout=max(0.0, deadline - loop.time()))
        outcomes = [_outcome(f, self.publish_patience_seconds) for _, f in handed]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if error is None and not failed:
            return
        acknowledged = {
            i
            for (indexes, _), o in zip(handed, outcomes, strict=True)
            if not isinstance(o, BaseException)
            for i in indexes
        }
        cause = failed[0] if failed else error
        assert cause is not None
        raise _Unacknowledged(cause, acknowledged, spent=bool(failed))

    async def _hand_over(
        self,
        producer: AIOKafkaProducer,
        batch: Any,
        name: str,
        partition: int,
        ahead: list[asyncio.Future[object]],
        deadline: float,
    ) -> asyncio.Future[object]:
        """``send_batch``, which waits (up to ``request_timeout_ms``) for the batch queued ahead on the partition
        to leave for the broker. When that batch is this publish's own and the broker has not answered yet, keep
        waiting instead of failing the publish: the idempotent producer retries the batch ahead until the broker
        answers, so failing here would only leave it in flight while the caller sends its records again. Up to
        ``deadline`` (``publish_patience_seconds``): a caller holding a transaction open (the relay's claim)
        must not wait out a long outage."""
        while True:
            try:
                return await producer.send_batch(batch, name, partition=partition)  # type: ignore[no-any-return]
            except KafkaTimeoutError as exc:
                waiting = any(not f.done() for f in ahead)
                if not (self.idempotent_producer and waiting) or asyncio.get_running_loop().time() >= deadline:
                    raise
                self._lost(exc)
                log.info("Kafka %s[%d]: the broker has not answered yet; still waiting", name, partition)

    async def subscribe(self, group: str, topics: Sequence[str], handler: MessageHandler) -> None:
        topics = [self.kafka_name(t) for t in topics]
        group = self.kafka_name(group)
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-{group}",
            group_id=group,
            enable_auto_commit=False,
            # "none": a missing or out-of-range offset raises instead of being reset silently, so GroupConsumer
            # applies (and counts) the policy itself — the same rewind to the earliest offset.
            auto_offset_reset="none",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
            request_timeout_ms=max(self.request_timeout_ms, self.session_timeout_ms + 5000),
            metadata_max_age_ms=5000,
        )
        self.consumers.append(consumer)
        loop = GroupConsumer(self, consumer, list(topics), handler)
        self._tasks.append(asyncio.create_task(loop.run(), name=f"kafka-consumer-{group}"))

    async def consumer_lag(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, lag) for the partitions assigned to this process: the high watermark
        from the last fetch minus the offset committed after handling (or the fetch position before the
        first commit). For metrics only; it does not touch consumption. Not clamped: a negative lag means
        offsets beyond the log's end (a broker that lost data) until ``GroupConsumer.check_offsets`` rewinds them."""
        out: list[tuple[str, str, int, int]] = []
        for consumer in list(self.consumers):
            group = str(consumer._group_id)
            try:
                assigned = consumer.assignment()
            except Exception:
                continue
            for tp in sorted(assigned):
                high = consumer.highwater(tp)
                if high is None:
                    continue
                done = self.committed_offsets.get((group, tp.topic, tp.partition))
                if done is None:
                    try:
                        done = await within(1, consumer.position(tp))
                    except Exception:
                        continue
                out.append((group, tp.topic, tp.partition, high - done))
        return out

    async def ping(self) -> bool:
        try:
            producer = await within(3, self._ensure_producer())
            await within(3, producer.client.fetch_all_metadata())
        except Exception as exc:
            self._lost(exc)
            return False
        self.note_contact()
        return True
