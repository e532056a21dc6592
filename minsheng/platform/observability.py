"""Request ids, trace context and logging."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minsheng.platform.envelope import TraceContext, child_traceparent, current_trace
from minsheng.platform.ids import uuid7

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("minsheng_request_id", default=None)


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``, kept if the gateway sent one) and a W3C trace context,
    so events emitted while handling it carry the same trace and correlation id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = (headers.get(b"x-request-id") or b"").decode()[:100] or str(uuid7())
        traceparent = child_traceparent((headers.get(b"traceparent") or b"").decode() or None)
        scope.setdefault("state", {})["request_id"] = request_id
        scope["state"]["traceparent"] = traceparent
        token = current_trace.set(TraceContext(traceparent=traceparent, correlation_id=request_id))
        rid_token = current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(rid_token)
            current_trace.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id (while handling a request),
    the W3C trace id and span id (requests and consumed events alike), the correlation id (the request id
    that started the chain of events), the causing event id, and any ``extra={"fields": {...}}``."""

    converter = staticmethod(time.gmtime)  # type: ignore[assignment]  # timestamps in UTC, like everything else

    def format(self, record: logging.LogRecord) -> str:
        ctx = current_trace.get()
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id:
            payload["request_id"] = request_id
        if ctx.traceparent:
            parts = ctx.traceparent.split("-")
            if len(parts) == 4:
                payload["trace_id"], payload["span_id"] = parts[1], parts[2]
        if ctx.correlation_id:
            payload["correlation_id"] = ctx.correlation_id
        if ctx.causation_id:
            payload["causation_id"] = ctx.causation_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # One access line per request comes from the metrics middleware (``minsheng.access``, with request id,
    # trace id, route and duration); uvicorn's own would repeat it without them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
