"""The one request layer in front of every request: request id, trace context, metrics and the access log."""

from __future__ import annotations

import logging
import re
import sys
import uuid

import pytest

from minsheng.platform.envelope import current_trace
from minsheng.platform.observability import RequestContextMiddleware, current_request_id
from tests.support.client import System

TRACE = "0af7651916cd43dd8448eb211c80319c"


def sample(exposition: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text format (labels given must all match)."""
    for line in exposition.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels}")


class _ContextCapture(logging.Handler):
    """Records, for each access-log line, the request id and trace visible when it was written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str | None, str | None, dict[str, object]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        self.seen.append((current_request_id.get(), current_trace.get().traceparent, fields))


async def test_the_request_id_is_kept_or_made_and_the_trace_continues(system: System) -> None:
    r = await system.client.get("/healthz", headers={"X-Request-ID": "gateway-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "gateway-42"

    r = await system.client.get("/healthz", headers={"X-Request-ID": "x" * 300})
    assert r.headers["x-request-id"] == "x" * 100  # capped

    made = (await system.client.get("/healthz")).headers["x-request-id"]
    again = (await system.client.get("/healthz")).headers["x-request-id"]
    assert uuid.UUID(made).version == 7 and made != again

    capture = _ContextCapture()
    access = logging.getLogger("minsheng.access")
    access.addHandler(capture)
    level = access.level
    access.setLevel(logging.DEBUG)
    try:
        parent = f"00-{TRACE}-b7ad6b7169203331-01"
        r = await system.client.get("/points/healthz", headers={"traceparent": parent, "X-Request-ID": "rid-7"})
    finally:
        access.removeHandler(capture)
        access.setLevel(level)
    assert r.status_code == 200
    [(request_id, traceparent, fields)] = capture.seen
    assert request_id == "rid-7", "the access line is written inside the request's context"
    assert traceparent is not None
    assert traceparent.split("-")[1] == TRACE and traceparent.split("-")[2] != "b7ad6b7169203331"
    assert fields["http_route"] == "/points/healthz" and fields["http_status"] == 200
    assert current_request_id.get() is None and current_trace.get().traceparent is None, "reset after"


async def test_problems_quote_the_request_id_they_were_answered_with(system: System) -> None:
    r = await system.client.get("/points/hazard-reports/not-a-uuid", headers={"X-Request-ID": "rid-problem"})
    assert r.status_code in (401, 422)
    assert r.json()["request_id"] == "rid-problem" == r.headers["x-request-id"]


async def test_requests_are_counted_and_timed_by_route_template(system: System) -> None:
    for _ in range(3):
        assert (await system.client.get("/points/healthz")).status_code == 200
    r = await system.client.get("/points/hazard-reports/not-a-uuid")
    status = str(r.status_code)
    await system.client.get("/no/such/path")

    text = (await system.client.get("/metrics")).text
    healthz = {"service": "points", "method": "GET", "route": "/points/healthz"}
    assert sample(text, "minsheng_http_requests_total", **healthz, status="200") == 3
    assert sample(text, "minsheng_http_request_duration_seconds_count", **healthz) == 3
    assert sample(text, "minsheng_http_request_duration_seconds_bucket", **healthz, le="+Inf") == 3
    template = {"service": "points", "method": "GET", "route": "/points/hazard-reports/{report_id}"}
    assert sample(text, "minsheng_http_requests_total", **template, status=status) == 1
    assert sample(text, "minsheng_http_requests_total", service="root", route="unmatched", status="404") == 1
    assert sample(text, "minsheng_http_requests_in_progress", service="points") == 0
    # /metrics itself is in progress while it renders
    assert sample(text, "minsheng_http_requests_in_progress", service="root") == 1


async def test_one_request_layer_on_the_root_app(system: System) -> None:
    layers = [m.cls for m in system.app.user_middleware]
    assert layers.count(RequestContextMiddleware) == 1  # type: ignore[arg-type]
    assert layers[0] is RequestContextMiddleware, "outermost: CORS answers carry the request id too"
    assert "MetricsMiddleware" not in {getattr(cls, "__name__", "") for cls in layers}


@pytest.mark.parametrize("path", ["/points/hazard-reports?q=%00", "/points/healthz?x=a%00b"])
async def test_nul_in_the_query_is_still_refused_with_the_request_id(system: System, path: str) -> None:
    r = await system.client.get(path, headers={"X-Request-ID": "rid-nul"})
    assert r.status_code == 422 and r.json()["code"] == "nul_byte"
    assert r.json()["request_id"] == "rid-nul" == r.headers["x-request-id"]


def test_log_lines_go_to_the_stderr_of_the_moment_not_one_since_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI command configures logging while Click's test runner has swapped stderr; once that stream is closed,
    a later log line must neither fail nor land in the next command's captured output as a logging error."""
    import io

    from minsheng.platform.observability import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        swapped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", swapped)
        configure_logging("INFO")
        swapped.close()
        now = io.StringIO()
        monkeypatch.setattr(sys, "stderr", now)
        logging.getLogger("minsheng.test").info("after the swap")
        assert now.getvalue().rstrip().endswith("minsheng.test: after the swap")
    finally:
        root.handlers[:], root.level = saved_handlers, saved_level
