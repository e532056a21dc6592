"""Prometheus metrics: ``GET /metrics`` on every process (never routed by the gateway).

What an operator alerts on:

- HTTP: ``minsheng_http_requests_total{service,method,route,status}`` and
  ``minsheng_http_request_duration_seconds{service,method,route}`` (route = the path template, so the label
  set stays small), ``minsheng_http_requests_in_progress{service}``.
- Outbox: ``minsheng_outbox_pending{service}`` and ``minsheng_outbox_oldest_pending_age_seconds{service}``
  (read from the database at scrape time, so they are right whichever replica relays), plus this process's
  ``minsheng_outbox_published_total`` / ``minsheng_outbox_publish_failures_total``.
- Consumers: ``minsheng_consumer_lag{group,topic,partition}`` (high watermark minus the offset committed after
  handling; partitions assigned to this process; never clamped: negative = offsets beyond the log's end, a
  broker that lost data), ``minsheng_consumer_offset_resets_total{group,topic,partition,reason}`` (partitions
  rewound to the log's start because it no longer had the offset), ``minsheng_consumer_events_total{service,outcome}``,
  ``minsheng_consumer_handler_failures_total{service}``, ``minsheng_consumer_dead_letters_total{service}`` and
  ``minsheng_dead_letters_unreplayed{service}`` (from the database: what ``minsheng dlq replay`` would take).
- Health: ``minsheng_db_up{service}``, ``minsheng_bus_up``, ``minsheng_bus_last_contact_age_seconds``,
  ``minsheng_build_info``; process CPU/memory/fds. The bus is never part of readiness (``/readyz``).

One registry per app (not the global one), so several apps in one test process do not collide. Database
reads at scrape time are bounded by a timeout; a database that does not answer shows as ``minsheng_db_up 0``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from minsheng.platform.bus.base import EventBus
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.observability import RequestContextMiddleware
from minsheng.platform.tasks import within

if TYPE_CHECKING:
    from minsheng.platform.service import ServiceRuntime

log = logging.getLogger(__name__)
access_log = logging.getLogger("minsheng.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SCRAPE_DB_TIMEOUT_SECONDS = 2.0


@dataclass
class ServiceSnapshot:
    db_up: bool = False
    outbox_pending: int | None = None
    oldest_pending_age_seconds: float | None = None
    dead_letters_unreplayed: int | None = None


@dataclass
class Snapshot:
    services: dict[str, ServiceSnapshot] = field(default_factory=dict)
    bus_up: bool = False
    lag: list[tuple[str, str, int, int]] = field(default_factory=list)


async def service_snapshot(runtime: ServiceRuntime) -> ServiceSnapshot:
    """Outbox backlog and unreplayed dead letters, read cheaply (the partial index on unsent rows)."""
    t = runtime.db.tables
    snap = ServiceSnapshot()
    try:
        async with runtime.db.engine.connect() as conn:
            pending, oldest = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(t.outbox.c.created_at)).where(t.outbox.c.sent_at.is_(None))
                )
            ).one()
            dead = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(t.dead_letters).where(t.dead_letters.c.replayed_at.is_(None))
                )
            ).scalar_one()
    except Exception as exc:  # a scrape must never fail because the database is down
        log.debug("metrics: %s database unreadable: %s", runtime.name, exc)
        return snap
    if isinstance(oldest, str):  # SQLite aggregates lose the column type
        oldest = datetime.fromisoformat(oldest)
    snap.db_up = True
    snap.outbox_pending = int(pending)
    snap.oldest_pending_age_seconds = max(0.0, (utcnow() - as_utc(oldest)).total_seconds()) if oldest else 0.0
    snap.dead_letters_unreplayed = int(dead)
    return snap


async def consumer_lag(bus: EventBus) -> list[tuple[str, str, int, int]]:
    """(group, topic, partition, lag) from whatever the bus can tell."""
    lag_of = getattr(bus, "consumer_lag", None)
    if lag_of is not None:  # KafkaBus
        return list(await lag_of())
    out: list[tuple[str, str, int, int]] = []
    for sub in getattr(bus, "_subs", ()):  # InProcessBus: one queue per group stands for one partition
        queue = getattr(sub, "queue", None)
        if queue is not None:
            out.append((sub.group, "*", 0, queue.qsize()))
    return out


class _RuntimeCollector(Collector):
    """Turns the last snapshot and the live in-process counters into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        snap = m.snapshot
        db_up = GaugeMetricFamily(
            "minsheng_db_up", "1 when the service's database answered the last scrape.", labels=["service"]
        )
        pending = GaugeMetricFamily("minsheng_outbox_pending", "Outbox events not yet published.", labels=["service"])
        age = GaugeMetricFamily(
            "minsheng_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none).",
            labels=["service"],
        )
        dead = GaugeMetricFamily(
            "minsheng_dead_letters_unreplayed", "Dead-lettered events not yet replayed.", labels=["service"]
        )
        published = CounterMetricFamily(
            "minsheng_outbox_published", "Events this process's relay published.", labels=["service"]
        )
        relay_failures = CounterMetricFamily(
            "minsheng_outbox_publish_failures", "Failed relay publish rounds in this process.", labels=["service"]
        )
        events = CounterMetricFamily(
            "minsheng_consumer_events", "Events consumed, by outcome.", labels=["service", "outcome"]
        )
        failures = CounterMetricFamily(
            "minsheng_consumer_handler_failures",
            "Handler attempts that raised (each retry counts).",
            labels=["service"],
        )
        dead_total = CounterMetricFamily(
            "minsheng_consumer_dead_letters", "Events this process dead-lettered.", labels=["service"]
        )
        for name, rt in m.runtimes.items():
            s = snap.services.get(name, ServiceSnapshot())
            db_up.add_metric([name], 1.0 if s.db_up else 0.0)
            if s.outbox_pending is not None:
                pending.add_metric([name], s.outbox_pending)
            if s.oldest_pending_age_seconds is not None:
                age.add_metric([name], s.oldest_pending_age_seconds)
            if s.dead_letters_unreplayed is not None:
                dead.add_metric([name], s.dead_letters_unreplayed)
            published.add_metric([name], rt.relay.published)
            relay_failures.add_metric([name], rt.relay.failures)
            stats = rt.consumer.stats
            for outcome, value in (
                ("handled", stats.handled),
                ("duplicate", stats.duplicates),
                ("skipped", stats.skipped),
            ):
                events.add_metric([name, outcome], value)
            failures.add_metric([name], stats.failures)
            dead_total.add_metric([name], stats.dead_lettered)
        lag = GaugeMetricFamily(
            "minsheng_consumer_lag",
            "Messages behind the high watermark, per partition.",
            labels=["group", "topic", "partition"],
        )
        for group, topic, partition, behind in snap.lag:
            lag.add_metric([group, topic, str(partition)], behind)
        bus_up = GaugeMetricFamily("minsheng_bus_up", "1 when the event bus answered the last scrape.")
        bus_up.add_metric([], 1.0 if snap.bus_up else 0.0)
        contact = GaugeMetricFamily(
            "minsheng_bus_last_contact_age_seconds",
            "Seconds since this process last reached the broker (an acknowledged publish, "
            "a commit, a metadata answer); absent before the first contact.",
        )
        age_of_contact = m.bus.health().get("last_contact_age_seconds")
        if age_of_contact is not None:
            contact.add_metric([], float(age_of_contact))
        resets = CounterMetricFamily(
            "minsheng_consumer_offset_resets",
            "Partitions rewound to the earliest offset because the log no longer had the "
            "consumer's offset (reason: beyond_end = the broker lost data, before_start = "
            "retention deleted unread events, out_of_range).",
            labels=["group", "topic", "partition", "reason"],
        )
        for (group, topic, partition, reason), count in sorted(getattr(m.bus, "offset_resets", {}).items()):
            resets.add_metric([group, topic, str(partition), reason], count)
        info = GaugeMetricFamily(
            "minsheng_build_info", "Version and mode of this process.", labels=["version", "mode", "services"]
        )
        info.add_metric([m.version, m.mode, ",".join(m.runtimes)], 1.0)
        yield from (
            db_up,
            pending,
            age,
            dead,
            published,
            relay_failures,
            events,
            failures,
            dead_total,
            lag,
            resets,
            bus_up,
            contact,
            info,
        )


class Metrics:
    def __init__(
        self, runtimes: Mapping[str, ServiceRuntime], bus: EventBus, *, mode: str = "embedded", version: str = "0.1.0"
    ) -> None:
        self.runtimes = dict(runtimes)
        self.bus = bus
        self.mode = mode
        self.version = version
        self.snapshot = Snapshot()
        self._refresh_lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "minsheng_http_requests",
            "HTTP requests answered.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "minsheng_http_request_duration_seconds",
            "HTTP request latency.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_in_progress = Gauge(
            "minsheng_http_requests_in_progress", "HTTP requests being handled.", ["service"], registry=self.registry
        )
        self._in_progress: dict[str, Any] = {}
        self._request_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(_RuntimeCollector(self))

    async def refresh(self) -> Snapshot:
        async with self._refresh_lock:
            names = list(self.runtimes)

            async def bounded(coro: Any, default: Any) -> Any:
                try:
                    return await within(SCRAPE_DB_TIMEOUT_SECONDS, coro)
                except Exception:
                    return default

            results = await asyncio.gather(
                *(bounded(service_snapshot(self.runtimes[n]), ServiceSnapshot()) for n in names),
                bounded(self.bus.ping(), False),
                bounded(consumer_lag(self.bus), []),
            )
            self.snapshot = Snapshot(
                services=dict(zip(names, results[: len(names)], strict=True)),
                bus_up=bool(results[len(names)]),
                lag=results[len(names) + 1],
            )
            return self.snapshot

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    def service_of(self, path: str) -> str:
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        return first if first in self.runtimes else "root"

    def in_progress_of(self, service: str) -> Any:
        gauge = self._in_progress.get(service)
        if gauge is None:
            gauge = self._in_progress[service] = self.http_in_progress.labels(service)
        return gauge

    def observe_request(self, scope: Scope, service: str, status: int, elapsed: float) -> None:
        """Count and time one answered request by service, method, route template and status, and write its
        structured access-log line (probes at DEBUG). Called by ``RequestContextMiddleware``."""
        path: str = scope.get("path", "")
        route = _route_template(scope, service)
        method = scope.get("method", "GET")
        key = (service, method, route, status)
        children = self._request_children.get(key)
        if children is None:
            # ``labels()`` validates and locks on every call; the label sets are few, so keep their children.
            children = self._request_children[key] = (
                self.http_requests.labels(service, method, route, str(status)),
                self.http_latency.labels(service, method, route),
            )
        children[0].inc()
        children[1].observe(elapsed)
        if path in PROBE_PATHS or path.endswith(("/healthz", "/readyz")):
            level = logging.DEBUG
        else:
            level = logging.WARNING if status >= 500 else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        access_log.log(
            level,
            "%s %s %d %.1fms",
            method,
            path,
            status,
            elapsed * 1000,
            extra={
                "fields": {
                    "http_method": method,
                    "http_path": path,
                    "http_route": route,
                    "http_status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "service": service,
                    "client": (scope.get("client") or ("", 0))[0],
                }
            },
        )


def _route_template(scope: Scope, service: str) -> str:
    """The matched route's template (``/issues/issues/{issue_id}/verify``), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return "unmatched"
    return f"/{service}{template}" if service != "root" else template


def install_metrics(
    app: FastAPI, runtimes: Iterable[ServiceRuntime], bus: EventBus, *, mode: str = "embedded"
) -> Metrics:
    """Add ``GET /metrics`` and the request layer (request context + metrics, one middleware) to the app."""

    metrics = Metrics({rt.name: rt for rt in runtimes}, bus, mode=mode, version=app.version)
    app.state.metrics = metrics
    for rt in metrics.runtimes.values():
        if rt.spec.metrics is not None:
            metrics.registry.register(rt.spec.metrics(rt))
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return metrics
