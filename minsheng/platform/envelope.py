"""The CloudEvents 1.0 envelope (structured mode) every integration event travels in."""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.ids import utcnow, uuid7

CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: UUID
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    traceparent: str | None = None
    partitionkey: str
    correlationid: str | None = None
    causationid: str | None = None


@dataclass(frozen=True)
class TraceContext:
    """What links events into one story: the W3C trace, the correlation id, and what caused this one."""

    traceparent: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


current_trace: contextvars.ContextVar[TraceContext] = contextvars.ContextVar(
    "minsheng_trace",
    default=TraceContext(),  # noqa: B039 - frozen, immutable
)


def new_traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """A new span id under the same trace id (or a new trace when there is none or it is malformed)."""
    parts = (parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return f"{parts[0]}-{parts[1]}-{os.urandom(8).hex()}-{parts[3]}"
    return new_traceparent()


def wrap(event: IntegrationEvent, *, service: str, subject: str | None = None) -> CloudEvent:
    ctx = current_trace.get()
    event_id = uuid7()
    return CloudEvent(
        id=event_id,
        source=f"/services/{service}",
        type=event.event_type,
        subject=subject if subject is not None else event.partition_key(),
        time=utcnow(),
        data=event.model_dump(mode="json"),
        traceparent=child_traceparent(ctx.traceparent),
        partitionkey=event.partition_key(),
        correlationid=ctx.correlation_id or str(event_id),
        causationid=ctx.causation_id,
    )


def trace_of(envelope: CloudEvent) -> TraceContext:
    """The context for work done because of ``envelope``: same trace and correlation, caused by it."""
    return TraceContext(
        traceparent=envelope.traceparent,
        correlation_id=envelope.correlationid or str(envelope.id),
        causation_id=str(envelope.id),
    )
