"""The relay figure, one side per process: ``python -m bench.relay_worker SPEC.json`` prints a JSON result.

- ``relay``: ``n`` outbox rows are COPYed into a migrated service database first (not timed); then the
  platform's ``OutboxRelay`` on a ``KafkaBus`` publishes them all, batch by batch, exactly as a service
  runs it (claim with FOR UPDATE SKIP LOCKED, publish with acks=all, mark sent, commit).
- ``raw_batch`` (the baseline): the same ``n`` messages (same topic, keys, values and headers) produced with a
  bare ``AIOKafkaProducer`` (the same settings: acks=all, linger 1 ms, the same record batch size) as record batches
  (``create_batch``/``send_batch``), ``batch_size`` messages at a time: send, await the acks, next. No
  database: what the broker and aiokafka can do.
- ``raw_send``: the same with one ``producer.send()`` per message (the common way; shown for context).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.baseline_app import outbox_values
from bench.datagen import copy_rows
from minsheng.platform.ids import utcnow, uuid7


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _infra_processes(spec: dict[str, Any]) -> dict[str, list[Any]]:
    """The broker's process and the bench's PostgreSQL (its postmaster and every backend): whose CPU besides
    this process's each side of the figure costs. Other PostgreSQL servers on the machine are not counted."""
    import asyncpg
    import psutil

    found: dict[str, list[Any]] = {"broker": [], "postgres": []}
    if spec.get("broker_pid"):
        found["broker"].append(psutil.Process(spec["broker_pid"]))
    conn = await asyncpg.connect(spec["dsn"])
    try:  # the backend's parent is read while the backend is alive
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    finally:
        await conn.close()
    if postmaster is not None:
        found["postgres"] = [postmaster]
    return found


def _infra_cpu(found: dict[str, list[Any]]) -> dict[int, float]:
    """CPU seconds per process, the postmaster's current children included (a backend that starts later counts
    from zero in :func:`_infra_split`)."""
    import psutil

    seconds: dict[int, float] = {}
    for procs in found.values():
        for proc in procs:
            family = [proc]
            if proc in found["postgres"]:
                with contextlib.suppress(psutil.Error):  # a backend may end while it is listed
                    family += proc.children()
            for p in family:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    seconds[p.pid] = t.user + t.system
    return seconds


def _infra_split(found: dict[str, list[Any]], before: dict[int, float], n: int) -> dict[str, float]:
    """µs of CPU per message in the broker and in PostgreSQL between ``before`` and now."""
    after = _infra_cpu(found)
    broker_pids = {p.pid for p in found["broker"]}
    split = {"broker": 0.0, "postgres": 0.0}
    for pid, seconds in after.items():
        split["broker" if pid in broker_pids else "postgres"] += seconds - before.get(pid, 0.0)
    return {f"{name}_cpu_us_per_message": total / max(n, 1) * 1e6 for name, total in split.items()}


def sample_message(i: int, topic: str) -> dict[str, Any]:
    rid = uuid7()
    data = {
        "report_id": str(rid),
        "rider_id": str(uuid7()),
        "category": "fire",
        "urgent": True,
        "description": f"Rubbish bin on fire near the theatre, report {i}",
        "latitude": 40.0134,
        "longitude": 112.7032,
        "address": "Gangcheng theatre, west gate",
        "community": "yunxing",
        "compound": "yuntaiyuan",
        "photo_urls": ["https://cdn.example/p/1.jpg"],
        "reported_at": utcnow().isoformat(),
    }
    return outbox_values(
        source="/services/points", event_type="minsheng.points.hazard.reported.v1", topic=topic, key=str(rid), data=data
    )


async def run_relay(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    from minsheng.platform.bus.base import OutgoingMessage
    from minsheng.platform.bus.kafka import KafkaBus
    from minsheng.platform.db import Database
    from minsheng.platform.outbox import OutboxRelay
    from services.points.models import metadata, platform_tables

    n, topic = spec["n"], spec["topic"]
    messages = [sample_message(i, topic) for i in range(n)]
    conn = await asyncpg.connect(spec["dsn"])
    try:
        await conn.execute("DELETE FROM outbox")
        recipe: dict[str, Callable[[int], Any]] = {
            name: (lambda i, name=name: messages[i][name])  # type: ignore[misc]
            for name in messages[0]
        }
        recipe["headers"] = lambda i: json.dumps(messages[i]["headers"])
        await copy_rows(conn, metadata.tables["outbox"], n, recipe)
        await conn.execute("ANALYZE outbox")
    finally:
        await conn.close()
    bus = KafkaBus(
        spec["bootstrap"], client_id="msbench-relay", partitions=1, idempotent_producer=spec.get("idempotent", True)
    )
    db = Database(spec["url"], platform_tables, pool_size=2)
    relay = OutboxRelay(db, bus, batch_size=spec["batch_size"])
    try:
        await bus.start()
        await bus.ensure_topics([topic])
        await bus.publish([OutgoingMessage(topic, "warm-up", b"warm-up")])
        infra = await _infra_processes(spec)
        infra0 = _infra_cpu(infra)
        t0, cpu0 = time.perf_counter(), _cpu()
        # What the relay's run loop does each time it wakes: publish batch after batch until none is full.
        await relay.drain()
        elapsed = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        split = _infra_split(infra, infra0, relay.published)  # before the pool closes its backends
    finally:
        await bus.stop()
        await db.dispose()
    return {
        "messages": relay.published,
        "seconds": elapsed,
        "rate": relay.published / elapsed,
        "cpu_us_per_message": cpu / max(relay.published, 1) * 1e6,
        **split,
    }


async def run_raw(spec: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from minsheng.platform.bus.kafka import MAX_BATCH_BYTES, KafkaBus

    n, topic, batch = spec["n"], spec["topic"], spec["batch_size"]
    messages = [sample_message(i, topic) for i in range(n)]
    encoded = [
        (m["key"].encode(), m["payload"].encode(), [(k, str(v).encode()) for k, v in m["headers"].items()])
        for m in messages
    ]
    await KafkaBus(spec["bootstrap"], partitions=1).ensure_topics([topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=spec["bootstrap"],
        client_id="msbench-raw",
        acks="all",
        enable_idempotence=False,
        linger_ms=1,
        max_batch_size=MAX_BATCH_BYTES,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"warm-up", key=b"warm-up")
        infra = await _infra_processes(spec)
        infra0 = _infra_cpu(infra)
        t0, cpu0 = time.perf_counter(), _cpu()
        for start in range(0, n, batch):
            if spec["mode"] == "raw_send":  # one send() per message, then await the batch's acks
                futures = [
                    await producer.send(topic, value=v, key=k, headers=h) for k, v, h in encoded[start : start + batch]
                ]
            else:  # record batches: create_batch/append/send_batch (one partition here: no partitioning)
                futures, rb = [], producer.create_batch()
                for k, v, h in encoded[start : start + batch]:
                    if rb.append(key=k, value=v, timestamp=None, headers=h) is None:
                        futures.append(await producer.send_batch(rb, topic, partition=0))
                        rb = producer.create_batch()
                        rb.append(key=k, value=v, timestamp=None, headers=h)
                futures.append(await producer.send_batch(rb, topic, partition=0))
            await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        split = _infra_split(infra, infra0, n)
    finally:
        await producer.stop()
    return {"messages": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_message": cpu / n * 1e6, **split}


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    result = asyncio.run(run_relay(spec) if spec["mode"] == "relay" else run_raw(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
