"""One consumer group's loop on the Kafka bus (``KafkaBus.subscribe`` starts one per group): fetch, hand each
partition's records to the handler in order, commit after the handler's transaction, and the policy for offsets
the log no longer has (``check_offsets``; ``minsheng/platform/bus/kafka.py`` says why)."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError

from minsheng.platform.bus.base import Delivery, MessageHandler, handle_in_order
from minsheng.platform.retry import Backoff
from minsheng.platform.tasks import within

if TYPE_CHECKING:
    from minsheng.platform.bus.kafka import KafkaBus

log = logging.getLogger("minsheng.platform.bus.kafka")


class GroupConsumer:
    """A started subscription: ``consumer`` (aiokafka, no auto-commit, ``auto_offset_reset="none"``) reading
    ``topics`` (names on the cluster) for ``handler``; offsets, resets and broker contact are kept on ``bus``."""

    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer, topics: list[str], handler: MessageHandler) -> None:
        self.bus = bus
        self.consumer = consumer
        self.topics = topics
        self.handler = handler
        self.group = str(consumer._group_id)

    async def run(self) -> None:
        consumer = self.consumer
        started = False
        backoff = Backoff(0.5, self.bus.max_backoff_seconds)  # jittered: replicas do not retry in lock-step
        group = self.group
        checked_assignment: frozenset[TopicPartition] = frozenset()
        next_check = 0.0
        while True:
            try:
                if not started:
                    await self.bus.ensure_topics(self.topics)
                    await consumer.start()
                    started = True
                assignment = frozenset(consumer.assignment())
                if assignment and (assignment != checked_assignment or time.monotonic() >= next_check):
                    await self.check_offsets(assignment)
                    checked_assignment = assignment
                    next_check = time.monotonic() + self.bus.offset_check_seconds
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=200)
                except NoOffsetForPartitionError as exc:  # a new group, or one the broker forgot
                    tps = [exc.args[0]] if exc.args and isinstance(exc.args[0], TopicPartition) else []
                    await self.check_offsets(frozenset(tps) or assignment, no_committed=True)
                    continue
                except OffsetOutOfRangeError as exc:
                    out = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                    await self.check_offsets(frozenset(out) or assignment, out_of_range=out)
                    continue
                # getmany has moved the positions past the whole batch: if this round fails, seek back to the
                # first record not handled, or it and the rest of its batch would be skipped until a restart.
                resume = {tp: records[0].offset for tp, records in batches.items() if records}
                # Partitions are handled side by side (each one in order: one key, one partition, so one
                # aggregate's events stay in order); a slow handler holds up only its own partition.
                outcomes = await asyncio.gather(
                    *(self._handle_partition(tp, records, resume) for tp, records in batches.items() if records),
                    return_exceptions=True,
                )
                failures = [o for o in outcomes if isinstance(o, BaseException)]
                if failures:
                    for tp, offset in resume.items():
                        with suppress(Exception):  # a partition revoked meanwhile is another member's now
                            consumer.seek(tp, offset)
                    raise failures[0]
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                log.warning("consumer %s: %s; retrying in %.1fs", group, exc, delay)
                await asyncio.sleep(delay)

    async def check_offsets(
        self,
        tps: frozenset[TopicPartition],
        *,
        no_committed: bool = False,
        out_of_range: dict[TopicPartition, int] | None = None,
    ) -> list[tuple[TopicPartition, str]]:
        """Compare where this consumer stands (its position, and the offset this process last committed) with
        the log's start and end offsets, and rewind to the earliest offset every partition whose offset the log
        does not have. Returns the partitions rewound with the reason; counts them in ``offset_resets``. The
        high watermark of this assignment's last fetch counts as an end offset too: a broker whose ListOffsets
        answer lags what it already served (seen with Tansu) must not cause rewinds.

        ``no_committed``: the group has no committed offset for ``tps`` (a new group — or a broker that lost
        its offsets, which the offsets this process committed before reveal). ``out_of_range``: the broker
        refused a fetch at these offsets."""
        consumer, group = self.consumer, self.group
        tps = frozenset(tp for tp in tps if tp in consumer.assignment())
        if not tps:
            return []
        ordered = sorted(tps)
        positions: dict[TopicPartition, int] = {}
        if not no_committed:  # read before the end offsets: a position never passes an end offset read later

            async def position_of(tp: TopicPartition) -> int:
                # consumer.position(tp) is created inside the task: if gather is cancelled before the task
                # starts, it is never created, rather than left "never awaited".
                return await within(1, consumer.position(tp))

            found = await asyncio.gather(*(position_of(tp) for tp in ordered), return_exceptions=True)
            positions = {tp: p for tp, p in zip(ordered, found, strict=True) if isinstance(p, int)}
        starts = await consumer.beginning_offsets(ordered)
        ends = await consumer.end_offsets(ordered)
        self.bus.note_contact()
        rewound: list[tuple[TopicPartition, str]] = []
        for tp in ordered:
            key = (group, tp.topic, tp.partition)
            start, end = starts.get(tp, 0), ends.get(tp, 0)
            committed = self.bus.committed_offsets.get(key)
            position = positions.get(tp)
            if out_of_range and tp in out_of_range:
                offset = out_of_range[tp]
                if position is not None and position != offset:
                    continue  # the answer to a fetch sent before a seek (ours, or a rebalance's): stale
                reason = "beyond_end" if offset > end else "before_start" if offset < start else "out_of_range"
            elif position is not None and position > max(end, consumer.highwater(tp) or 0):
                reason = "beyond_end"
            elif committed is not None and committed > max(end, consumer.highwater(tp) or 0):
                reason = "beyond_end"  # the position may already be back at 0 (the group's offsets are gone too)
            elif position is not None and position < start:
                reason = "before_start"
            elif no_committed:
                reason = ""  # an ordinary new group: start at the beginning, nothing to report
            else:
                continue
            if reason:
                self.bus.offset_resets[(*key, reason)] = self.bus.offset_resets.get((*key, reason), 0) + 1
                if reason == "beyond_end":
                    # The broker lost data, and with it perhaps topics this process made: check them all again
                    # before the next publish (the producer would wait a request timeout per vanished topic).
                    self.bus.forget_topics()
                log.error(
                    "consumer %s: %s[%d] offset %s is %s of the log [%d, %d): the broker lost data or the log was "
                    "truncated; rewinding to the earliest offset (the inbox drops what was handled). Re-send lost "
                    "events with `minsheng outbox resend --since`",
                    group,
                    tp.topic,
                    tp.partition,
                    out_of_range.get(tp)
                    if out_of_range and tp in out_of_range
                    else position
                    if position is not None
                    else committed,
                    reason.replace("_", " "),
                    start,
                    end,
                    extra={
                        "fields": {
                            "group": group,
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "reason": reason,
                            "log_start": start,
                            "log_end": end,
                        }
                    },
                )
                rewound.append((tp, reason))
            self.bus.committed_offsets.pop(key, None)
            consumer.seek(tp, start)
        if rewound:
            # Make the rewind the group's: otherwise the next rebalance fetches the lost offset again (and the
            # partition is rewound, and its events re-read, once per rebalance).
            try:
                await consumer.commit({tp: starts.get(tp, 0) for tp, _ in rewound})
            except Exception as exc:  # a rebalance in progress: the next check or fetch error repeats this
                log.warning("consumer %s: could not commit the rewound offsets (%s)", group, exc)
        return rewound

    async def _handle_partition(
        self, tp: TopicPartition, records: list[Any], resume: dict[TopicPartition, int]
    ) -> None:
        deliveries = [
            Delivery(
                topic=self.bus.plain_name(rec.topic),
                key=rec.key.decode() if rec.key else None,
                value=rec.value or b"",
                headers=[(k, bytes(v)) for k, v in (rec.headers or ())],
                partition=rec.partition,
                offset=rec.offset,
            )
            for rec in records
        ]
        await handle_in_order(self.handler, deliveries)
        resume[tp] = records[-1].offset + 1
        # Handlers committed their effects (and inbox rows) already: a crash before this line means
        # redelivery, which the inbox turns into a no-op.
        await self.consumer.commit({TopicPartition(tp.topic, tp.partition): records[-1].offset + 1})
        self.bus.committed_offsets[(self.group, tp.topic, tp.partition)] = records[-1].offset + 1
        self.bus.note_contact()
