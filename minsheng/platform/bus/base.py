from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutgoingColumns:
    """Messages as columns, as the outbox relay claims them on PostgreSQL (one row of arrays, so no row object
    or message object per message): keys and values already bytes, each message's headers as the JSON object
    text the outbox stored (decoded here, in the relay, which scales out, rather than flattened by PostgreSQL,
    which does not: that took half of the claim's CPU there). A bus with ``publish_columns`` takes them as
    they are."""

    topics: list[str]
    keys: list[bytes]
    values: list[bytes]
    headers_json: list[str]

    def __len__(self) -> int:
        return len(self.values)

    def headers(self) -> list[list[tuple[str, bytes]]]:
        """Each message's headers, in the stored object's order; values as UTF-8 bytes (a non-string value as
        its JSON text, as ``jsonb_each_text`` gave it)."""
        return [
            [
                (k, (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)).encode())
                for k, v in json.loads(text).items()
            ]
            for text in self.headers_json
        ]

    def messages(self) -> list[OutgoingMessage]:
        return [
            OutgoingMessage(topic, key.decode(), value, headers)
            for topic, key, value, headers in zip(self.topics, self.keys, self.values, self.headers(), strict=True)
        ]


@dataclass(frozen=True)
class Delivery:
    topic: str
    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int = 0
    offset: int = 0

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode()
        return None


MessageHandler = Callable[[Delivery], Awaitable[None]]


async def handle_in_order(handler: MessageHandler, deliveries: Sequence[Delivery]) -> None:
    """Give a handler what was fetched from one partition: all at once when it takes batches (it has a
    ``handle_batch``, as ``EventConsumer`` has), else one delivery after another."""
    batch = getattr(handler, "handle_batch", None)
    if batch is not None:
        await batch(deliveries)
        return
    for delivery in deliveries:
        await handler(delivery)


class EventBus(Protocol):
    """At-least-once delivery. ``publish`` returns once every message is durably accepted (acks=all);
    a subscription's handler is awaited per message (or per fetched batch of one partition, in order, see
    ``handle_in_order``) and the position is committed only after it returns."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None: ...

    async def subscribe(self, group: str, topics: Sequence[str], handler: MessageHandler) -> None: ...

    async def ping(self) -> bool: ...

    def health(self) -> dict[str, Any]:
        """The transport's health as last seen, without a network call: ``up``, ``last_contact_age_seconds``,
        ``last_error``. A detail of ``/healthz`` and a metric, never a reason to refuse requests."""
        ...
