"""A bus for tests of the outbox relay alone: it acknowledges every publish and remembers what it was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from minsheng.platform.bus.base import MessageHandler, OutgoingMessage
from minsheng.platform.ids import utcnow


class RecordingBus:
    """Acknowledges after ``delay`` seconds and remembers what it was sent and when it acknowledged."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[str] = []
        self.acked_at: list[Any] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        await asyncio.sleep(self.delay)
        self.sent += [m.key for m in messages]
        self.acked_at.append(utcnow())

    async def subscribe(self, group: str, topics: Sequence[str], handler: MessageHandler) -> None: ...

    async def ping(self) -> bool:
        return True

    def health(self) -> dict[str, Any]:
        return {"up": True, "last_contact_age_seconds": 0.0, "last_error": None}
