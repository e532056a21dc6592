"""The issues intake of N hazard events: handled one event per transaction (as before) against one fetched
batch per transaction (``EventConsumer.handle_batch``). In-process on PostgreSQL (a database URL template, or
the local/private server the tests use), or SQLite with ``--sqlite``.

    python -m bench.consumer_batch [--events 400] [--batch 100] [--database-url postgresql+asyncpg://…/x_{service}]

Prints one JSON document: CPU (this process: handler, SQLAlchemy, driver) and wall time per event, each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minsheng.contracts.points import HazardReported
from minsheng.platform.bus.base import Delivery
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.envelope import wrap


def hazard_deliveries(count: int, *, north: float) -> list[Delivery]:
    """``count`` urgent reports far apart (none is attached to another's issue as a duplicate report)."""
    out = []
    for i in range(count):
        event = HazardReported(
            report_id=uuid.uuid4(),
            rider_id=uuid.uuid4(),
            category="fire",
            urgent=True,
            description="Rubbish bin on fire",
            latitude=north + (i // 100) * 0.05,
            longitude=100 + (i % 100) * 0.05,
            address="west gate",
            community="yunxing",
            compound="yuntaiyuan",
            photo_urls=[],
            reported_at=datetime.now(UTC),
        )
        envelope = wrap(event, service="points")
        out.append(Delivery(HazardReported.topic, str(event.report_id), envelope.model_dump_json().encode(), [], 0, i))
    return out


async def run(events: int, batch: int, database_url: str, data_dir: Path) -> dict[str, Any]:
    from minsheng.platform.service import ServiceRuntime
    from minsheng.runner import load_spec
    from minsheng.settings import Settings

    settings = Settings(mode="embedded", data_dir=data_dir, database_url=database_url)
    runtime = ServiceRuntime(load_spec("issues"), settings, InProcessBus())
    await runtime.migrate()
    consumer = runtime.consumer
    consumer.batch_size = batch
    try:
        for delivery in hazard_deliveries(20, north=10):  # warm up (statement caches, pool)
            await consumer(delivery)
        await consumer.handle_batch(hazard_deliveries(20, north=11))
        out: dict[str, Any] = {"events": events, "batch": batch, "database": runtime.db.url.get_backend_name()}
        one = hazard_deliveries(events, north=20)
        t0, c0 = time.perf_counter(), time.process_time()
        for delivery in one:
            await consumer(delivery)
        out["one_by_one"] = _figures(events, time.perf_counter() - t0, time.process_time() - c0)
        together = hazard_deliveries(events, north=40)
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, events, 200):  # as Kafka fetches them: up to 200 records per partition
            await consumer.handle_batch(together[start : start + 200])
        out["batched"] = _figures(events, time.perf_counter() - t0, time.process_time() - c0)
        out["cpu_ratio"] = round(out["batched"]["cpu_ms_per_event"] / out["one_by_one"]["cpu_ms_per_event"], 3)
        out["fallbacks"] = consumer.stats.batch_fallbacks
        return out
    finally:
        await runtime.db.dispose()


def _figures(events: int, wall: float, cpu: float) -> dict[str, float]:
    return {
        "events_per_second": round(events / wall, 1),
        "cpu_ms_per_event": round(cpu / events * 1e3, 3),
        "wall_ms_per_event": round(wall / events * 1e3, 3),
    }


@contextlib.contextmanager
def _database(url: str | None, sqlite: bool) -> Iterator[str]:
    if sqlite:
        yield ""
        return
    if url:
        yield url
        return
    from minsheng.localinfra.postgres import postgres_server

    with postgres_server() as base:
        yield f"{base}/msbench_{uuid.uuid4().hex[:8]}_{{service}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    with _database(args.database_url, args.sqlite) as url, tempfile.TemporaryDirectory() as tmp:
        if url:
            from minsheng.platform.db import create_database_if_missing

            asyncio.run(create_database_if_missing(url.replace("{service}", "issues")))
        result = asyncio.run(run(args.events, args.batch, url, Path(tmp)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
