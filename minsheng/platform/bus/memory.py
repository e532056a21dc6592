"""The in-process bus of the embedded mode: one ordered queue per consumer group, like one partition."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from minsheng.platform.bus.base import Delivery, MessageHandler, OutgoingMessage, handle_in_order
from minsheng.platform.tasks import cancel_all

log = logging.getLogger(__name__)

BATCH = 200  # deliveries handed over at once at most: Kafka's max_records per fetch


class _Subscription:
    def __init__(self, group: str, topics: Sequence[str], handler: MessageHandler) -> None:
        self.group = group
        self.topics = frozenset(topics)
        self.handler = handler
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.offsets: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            # What is queued, as a fetch from one partition would give it (up to BATCH at once).
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await handle_in_order(self.handler, batch)
            except Exception:  # the consumer dispatcher handles its own errors; this is a last guard
                log.exception("in-process handler for %s failed", self.group)
            finally:
                for _ in batch:
                    self.queue.task_done()


class InProcessBus:
    def __init__(self) -> None:
        self._subs: list[_Subscription] = []
        self._running = False
        self.published: int = 0

    async def start(self) -> None:
        self._running = True
        for sub in self._subs:
            self._spawn(sub)

    async def stop(self) -> None:
        self._running = False
        await cancel_all([sub.task for sub in self._subs if sub.task])
        for sub in self._subs:
            sub.task = None

    def _spawn(self, sub: _Subscription) -> None:
        if sub.task is None:
            sub.task = asyncio.create_task(sub.run(), name=f"inprocess-consumer-{sub.group}")

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        for m in messages:
            self.published += 1
            for sub in self._subs:
                if m.topic in sub.topics:
                    offset = sub.offsets.get(m.topic, 0)
                    sub.offsets[m.topic] = offset + 1
                    sub.queue.put_nowait(Delivery(m.topic, m.key, m.value, list(m.headers), 0, offset))

    async def subscribe(self, group: str, topics: Sequence[str], handler: MessageHandler) -> None:
        sub = _Subscription(group, topics, handler)
        self._subs.append(sub)
        if self._running:
            self._spawn(sub)

    async def ping(self) -> bool:
        return self._running

    def health(self) -> dict[str, Any]:
        return {"up": self._running, "last_contact_age_seconds": 0.0 if self._running else None, "last_error": None}

    async def drain(self) -> None:
        """Wait until every queued message has been handled (tests)."""
        for sub in self._subs:
            await sub.queue.join()
