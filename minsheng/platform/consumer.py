"""Consuming integration events: parse the envelope, skip what was already processed (inbox), run the
service's handler in a unit of work, retry with backoff, and dead-letter what keeps failing.

A database outage is not the message's fault: it is retried until the database is back, never
dead-lettered. Anything else fails ``max_attempts`` times and goes to the dead letters, so one poison
message never stops the partition.

The bus hands over what it fetched from one partition at once (``handle_batch``): the batch is handled in one
transaction — one inbox look-up for all of it, the handlers in order, one bulk inbox and outbox insert, one
commit. If anything in it fails, the transaction rolls back and the batch is handled one event at a time
(``__call__``: retries, dead letters), so a poison event costs its batch the fast path, never an event. A
handler failure inside the batch counts as that event's first attempt, so a handler runs at most
``max_attempts`` times for any event, batched or not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.bus.base import Delivery, EventBus, OutgoingMessage
from minsheng.platform.db import Database, is_transient_db_error
from minsheng.platform.envelope import CloudEvent, current_trace, trace_of
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.retry import Backoff, full_jitter
from minsheng.platform.uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[Any, CloudEvent, UnitOfWork], Awaitable[None]]


def hand_to(use_case: Callable[[UnitOfWork, Any], Awaitable[object]]) -> Handler:
    """The handler of an event a use case takes as it is, ``use_case(uow, event)``: ``HANDLERS = {X: hand_to(f)}``
    instead of an ``on_x`` that only passes the event on."""

    async def handle(event: Any, envelope: CloudEvent, uow: UnitOfWork) -> None:
        await use_case(uow, event)

    return handle


class PoisonMessage(Exception):
    """The message can never be handled (unparseable envelope, payload violating its contract)."""


class _HandlerFailedInBatch(Exception):
    """A handler raised while its batch was handled together: that run counts as the event's first attempt."""

    def __init__(self, delivery: Delivery, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.delivery = delivery
        self.cause = cause


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    failures: int = 0
    dead_lettered: int = 0
    batches: int = 0  # batches handled in one transaction
    batch_fallbacks: int = 0  # batches that failed as a whole and were handled one event at a time


class EventConsumer:
    def __init__(
        self,
        service: str,
        db: Database,
        bus: EventBus,
        handlers: Mapping[type[IntegrationEvent], Handler],
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 0.2,
        batch_size: int = 100,
    ) -> None:
        self.service = service
        self.db = db
        self.bus = bus
        self.handlers = {model.event_type: (model, fn) for model, fn in handlers.items()}
        self.topics = sorted({model.topic for model in handlers})
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.batch_size = batch_size  # events per transaction at most (a long batch holds its locks longer)
        self.stats = ConsumerStats()

    @property
    def group(self) -> str:
        return self.service

    async def __call__(self, delivery: Delivery, *, failed_in_batch: Exception | None = None) -> None:
        """Handle one delivery, retrying with backoff; ``failed_in_batch``: what its handler raised when its
        batch was handled together, which counts as the first of ``max_attempts``."""
        attempts = 0
        db_backoff = Backoff(self.retry_base_seconds, 5.0)
        if failed_in_batch is not None:
            self.stats.failures += 1
            attempts = 1
            if attempts >= self.max_attempts:
                await self.dead_letter(delivery, failed_in_batch, attempts)
                return
            log.info("%s: handler failed (attempt 1/%d): %r", self.service, self.max_attempts, failed_in_batch)
            await asyncio.sleep(full_jitter(self.retry_base_seconds, 30.0, 0))
        while True:
            try:
                await self.handle(delivery)
                return
            except asyncio.CancelledError:
                raise
            except PoisonMessage as exc:
                await self.dead_letter(delivery, exc, attempts + 1)
                return
            except Exception as exc:
                self.stats.failures += 1
                if is_transient_db_error(exc):
                    delay = db_backoff.next_delay()
                    log.warning(
                        "%s: database unavailable while handling (%s); retrying in %.1fs", self.service, exc, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                attempts += 1
                if attempts >= self.max_attempts:
                    await self.dead_letter(delivery, exc, attempts)
                    return
                log.info("%s: handler failed (attempt %d/%d): %r", self.service, attempts, self.max_attempts, exc)
                await asyncio.sleep(full_jitter(self.retry_base_seconds, 30.0, attempts - 1))

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Handle deliveries of one partition, in order: in transactions of up to ``batch_size`` events, each
        falling back to one event at a time when anything in it fails."""
        for start in range(0, len(deliveries), self.batch_size):
            chunk = deliveries[start : start + self.batch_size]
            if len(chunk) == 1:
                await self(chunk[0])
                continue
            failed: _HandlerFailedInBatch | None = None
            try:
                await self._handle_together(chunk)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.batch_fallbacks += 1
                log.info("%s: a batch of %d failed as a whole (%r); one by one", self.service, len(chunk), exc)
                if isinstance(exc, _HandlerFailedInBatch):
                    failed = exc
            for delivery in chunk:
                cause = failed.cause if failed is not None and failed.delivery is delivery else None
                await self(delivery, failed_in_batch=cause)

    async def _handle_together(self, deliveries: Sequence[Delivery]) -> None:
        """All of ``deliveries`` in one unit of work, or (raising) none of them."""
        parsed = [(delivery, self.parse(delivery)) for delivery in deliveries]  # PoisonMessage: one by one
        ours = [(delivery, p) for delivery, p in parsed if p is not None]
        handled: list[tuple[Delivery, CloudEvent]] = []
        duplicates = 0
        async with UnitOfWork(self.db, self.service) as uow:
            seen = await self._seen(uow, [envelope for _, (envelope, _, _) in ours])
            for delivery, (envelope, event, handler) in ours:
                if (envelope.source, envelope.id) in seen:
                    duplicates += 1
                    continue
                seen.add((envelope.source, envelope.id))  # the same event twice in one batch
                token = current_trace.set(trace_of(envelope))
                try:
                    await handler(event, envelope, uow)
                except Exception as exc:
                    if isinstance(exc, PoisonMessage) or is_transient_db_error(exc):
                        raise  # dead-lettered at once, or the database's fault: not an attempt
                    raise _HandlerFailedInBatch(delivery, exc) from exc
                finally:
                    current_trace.reset(token)
                await uow.mark_processed(envelope)
                handled.append((delivery, envelope))
            await uow.commit()  # IntegrityError (a concurrent delivery won an inbox row): one by one
        self.stats.batches += 1
        self.stats.skipped += len(parsed) - len(ours)
        self.stats.duplicates += duplicates
        self.stats.handled += len(handled)
        for delivery, envelope in handled:
            self._log_handled(delivery, envelope)

    async def _seen(self, uow: UnitOfWork, envelopes: Sequence[CloudEvent]) -> set[tuple[str, uuid.UUID]]:
        """Which of ``envelopes`` the inbox has: one query for the batch."""
        if not envelopes:
            return set()
        t = self.db.tables.processed_events
        keys = {(envelope.source, envelope.id) for envelope in envelopes}
        found = await uow.session.execute(sa.select(t.c.source, t.c.id).where(sa.tuple_(t.c.source, t.c.id).in_(keys)))
        return {(row.source, row.id) for row in found}

    def parse(self, delivery: Delivery) -> tuple[CloudEvent, IntegrationEvent, Handler] | None:
        try:
            envelope = CloudEvent.model_validate_json(delivery.value)
        except ValidationError as exc:
            raise PoisonMessage(f"not a CloudEvent: {exc}") from exc
        entry = self.handlers.get(envelope.type)
        if entry is None:
            return None  # another event on a topic we read: not ours to handle
        model, handler = entry
        try:
            event = model.model_validate(envelope.data)
        except ValidationError as exc:
            raise PoisonMessage(f"{envelope.type} violates its contract: {exc}") from exc
        return envelope, event, handler

    async def handle(self, delivery: Delivery) -> bool:
        """Handle once, exactly-once in effect. Returns False when it was a duplicate or not ours."""
        parsed = self.parse(delivery)
        if parsed is None:
            self.stats.skipped += 1
            return False
        envelope, event, handler = parsed
        token = current_trace.set(trace_of(envelope))
        try:
            async with UnitOfWork(self.db, self.service) as uow:
                if await uow.seen(envelope):
                    self.stats.duplicates += 1
                    return False
                await handler(event, envelope, uow)
                await uow.mark_processed(envelope)
                try:
                    await uow.commit()
                except sa.exc.IntegrityError:
                    # A concurrent delivery of the same event won the inbox insert: its effect stands, ours
                    # rolls back with this transaction.
                    await uow.rollback()
                    if await self._processed(envelope):
                        self.stats.duplicates += 1
                        return False
                    raise
            self._log_handled(delivery, envelope)
        finally:
            current_trace.reset(token)
        self.stats.handled += 1
        return True

    def _log_handled(self, delivery: Delivery, envelope: CloudEvent) -> None:
        """One line per handled event, under the event's trace (operators follow a trace across services)."""
        token = current_trace.set(trace_of(envelope))
        try:
            log.info(
                "%s: handled %s %s",
                self.service,
                envelope.type,
                envelope.id,
                extra={
                    "fields": {
                        "event_type": envelope.type,
                        "event_id": str(envelope.id),
                        "topic": delivery.topic,
                        "partition": delivery.partition,
                        "offset": delivery.offset,
                    }
                },
            )
        finally:
            current_trace.reset(token)

    async def _processed(self, envelope: CloudEvent) -> bool:
        async with UnitOfWork(self.db, self.service) as uow:
            return await uow.seen(envelope)

    async def dead_letter(self, delivery: Delivery, exc: BaseException, attempts: int) -> None:
        self.stats.dead_lettered += 1
        error = f"{type(exc).__name__}: {exc}"[:4000]
        event_id, event_type = _peek_ids(delivery)
        log.error("%s: dead-lettering %s %s after %d attempts: %s", self.service, event_type, event_id, attempts, error)
        t = self.db.tables.dead_letters
        async with self.db.engine.begin() as conn:
            await conn.execute(
                sa.insert(t).values(
                    id=uuid7(),
                    event_id=_text(event_id),
                    event_type=_text(event_type),
                    topic=delivery.topic,
                    key=_text(delivery.key),
                    payload=_text(delivery.value.decode(errors="replace")),
                    headers={k: _text(v.decode(errors="replace")) for k, v in delivery.headers},
                    error=_text(error),
                    attempts=attempts,
                    created_at=utcnow(),
                )
            )
        headers = [
            *delivery.headers,
            ("dlq_error", error.encode()),
            ("dlq_topic", delivery.topic.encode()),
            ("dlq_attempts", str(attempts).encode()),
        ]
        try:
            await self.bus.publish(
                [OutgoingMessage(f"{self.service}.dlq", delivery.key or "", delivery.value, headers)]
            )
        except Exception:  # the table row is the record replay works from; the topic is for operators
            log.warning("%s: could not publish to the dead-letter topic", self.service, exc_info=True)

    async def replay_dead_letters(self, ids: list[str] | None = None) -> list[tuple[str, str]]:
        """Run dead-lettered messages through the handler again, once each. Returns (id, outcome) pairs:
        ``handled``, ``already processed``, or ``still failing: <error>`` — a letter that still fails (a poison
        message: it can never be handled) stays a dead letter with the new error and one more attempt counted,
        for a later replay or ``discard_dead_letters``."""
        t = self.db.tables.dead_letters
        query = sa.select(t).where(t.c.replayed_at.is_(None)).order_by(t.c.created_at)
        if ids:
            query = query.where(t.c.id.in_(_uuids(ids)))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        outcomes: list[tuple[str, str]] = []
        for row in rows:
            delivery = Delivery(
                row.topic, row.key, row.payload.encode(), [(k, str(v).encode()) for k, v in (row.headers or {}).items()]
            )
            try:
                handled = await self.handle(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _text(f"{type(exc).__name__}: {exc}"[:4000])
                async with self.db.engine.begin() as conn:
                    await conn.execute(
                        sa.update(t).where(t.c.id == row.id).values(error=error, attempts=t.c.attempts + 1)
                    )
                outcomes.append((str(row.id), f"still failing: {error}"))
                continue
            async with self.db.engine.begin() as conn:
                await conn.execute(sa.update(t).where(t.c.id == row.id).values(replayed_at=utcnow()))
            outcomes.append((str(row.id), "handled" if handled else "already processed"))
        return outcomes

    async def discard_dead_letters(self, ids: list[str] | None = None) -> list[tuple[str, str | None]]:
        """Give up on dead letters (all unreplayed ones, or ``ids``): they leave the replay queue and the
        ``minsheng_dead_letters_unreplayed`` gauge, but the row stays, marked, for the record (``dlq list
        --all``), and the ``<service>.dlq`` topic keeps its copy. Returns (id, event type) of each discarded."""
        t = self.db.tables.dead_letters
        now = utcnow()
        query = sa.select(t.c.id, t.c.event_type, t.c.error).where(t.c.replayed_at.is_(None))
        if ids:
            query = query.where(t.c.id.in_(_uuids(ids)))
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(query.with_for_update() if self.db.is_postgres else query)).all()
            for row in rows:
                await conn.execute(
                    sa.update(t)
                    .where(t.c.id == row.id)
                    .values(replayed_at=now, error=_text(f"{DISCARDED_MARK} {now.isoformat()}] {row.error}"[:4000]))
                )
        for row in rows:
            log.warning("%s: dead letter %s (%s) discarded by an operator", self.service, row.id, row.event_type)
        return [(str(row.id), row.event_type) for row in rows]


DISCARDED_MARK = "[discarded"  # prefix of a discarded dead letter's error: "[discarded <time>] <error>"


def is_discarded(error: str | None) -> bool:
    return bool(error and error.startswith(DISCARDED_MARK))


def _uuids(ids: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(i) for i in ids]
    except ValueError as exc:
        raise ValueError(f"not a dead letter id: {exc}") from exc


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: a message made of arbitrary bytes must still be dead-lettered."""
    return value.replace("\x00", "\ufffd") if value is not None else None


def _peek_ids(delivery: Delivery) -> tuple[str | None, str | None]:
    try:
        raw = json.loads(delivery.value)
        return str(raw.get("id")), str(raw.get("type"))
    except Exception:
        return delivery.header("ce_id"), delivery.header("ce_type")
