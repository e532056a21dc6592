"""What the sender counts (provider outcomes, send latency, the queue's shape) and how Prometheus reads it."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minsheng.platform.service import ServiceRuntime
from services.notify import state


@dataclass
class SenderStats:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, outcome) → count
    queue: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) → rows
    oldest_due_age: dict[str, float] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))  # created → accepted, s


class NotifyCollector(Collector):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        notifier = state.NOTIFIERS.get(self.runtime.db)
        outcomes = CounterMetricFamily(
            "minsheng_notify_send_outcomes",
            "Provider calls by channel and outcome (ok, transient, throttled, permanent).",
            labels=["channel", "outcome"],
        )
        queue = GaugeMetricFamily(
            "minsheng_notify_deliveries",
            "Deliveries not yet sent, by channel and status (pending, held, sending, failed, dead, skipped).",
            labels=["channel", "status"],
        )
        age = GaugeMetricFamily(
            "minsheng_notify_oldest_due_age_seconds",
            "How long the oldest due delivery has waited, by channel.",
            labels=["channel"],
        )
        if notifier is not None:
            for (channel, outcome), n in notifier.stats.outcomes.items():
                outcomes.add_metric([channel, outcome], n)
            for (channel, status), n in notifier.stats.queue.items():
                queue.add_metric([channel, status], n)
            for channel, seconds in notifier.stats.oldest_due_age.items():
                age.add_metric([channel], seconds)
        yield from (outcomes, queue, age)


def metrics(runtime: ServiceRuntime) -> NotifyCollector:
    return NotifyCollector(runtime)
