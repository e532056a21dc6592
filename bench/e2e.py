"""End-to-end event latency at a fixed rate, one side per process: ``python -m bench.e2e SPEC.json``.

- ``service``: hazard reports are POSTed to the points service (a ``minsheng serve points`` process) on a
  fixed schedule (open loop); the issues service (another process) consumes the event from Kafka and
  commits the issue. A trigger the bench adds to the issues database sends ``NOTIFY msbench_issue`` with
  the report id; PostgreSQL delivers it when the issue's transaction commits, i.e. when the issue becomes
  visible to any reader. Latency = NOTIFY received − the report's scheduled send time.
- ``kafka``: the baseline — raw aiokafka produce (acks=all) → consume (``fetch_max_wait_ms`` as the
  platform's) of the same payloads at the same rate on the same broker.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen import (
    IDLE_REOPEN_S,
    Connection,
    Template,
    build_request,
    fixed_rate,
    install_uvloop,
    percentiles,
    requests_cycle,
)

NOTIFY_SQL = """
CREATE OR REPLACE FUNCTION msbench_notify_issue() RETURNS trigger AS $$
BEGIN PERFORM pg_notify('msbench_issue', coalesce(NEW.origin_id, '')); RETURN NEW; END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS msbench_issue_visible ON issues;
CREATE TRIGGER msbench_issue_visible AFTER INSERT ON issues FOR EACH ROW EXECUTE FUNCTION msbench_notify_issue();
"""


async def _until(done: Callable[[], bool], seconds: float) -> None:
    """Poll (the notifications arrive on another connection's callback) until ``done()`` or time is up."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 - a callback fills `seen`
        await asyncio.sleep(0.05)


async def run_service(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    asyncio.get_running_loop()
    seen: dict[str, float] = {}
    listener = await asyncpg.connect(spec["issues_dsn"])
    await listener.add_listener("msbench_issue", lambda *a: seen.setdefault(a[3], time.perf_counter()))
    raw = build_request("127.0.0.1", spec["port"], "POST", spec["path"], spec["headers"], spec["body"])
    Template.base = int(time.time() * 1000) % 10**9
    bodies = requests_cycle([raw])  # every report at its own place: none is a duplicate of another
    rate, warmup, duration = float(spec["rate"]), spec.get("warmup", 1), spec["duration"]
    sent: dict[str, tuple[float, bool]] = {}
    post_latency: list[float] = []
    errors: list[str] = []
    idle = [await Connection.open("127.0.0.1", spec["port"]) for _ in range(16)]

    async def one(due: float, measured: bool) -> None:
        conn = idle.pop() if idle else await Connection.open("127.0.0.1", spec["port"])
        if time.perf_counter() - conn.last_used > IDLE_REOPEN_S:  # the server may have closed it by now
            conn.close()
            conn = await Connection.open("127.0.0.1", spec["port"])
        try:
            status, body = await conn.request(next(bodies))
        except Exception as exc:
            errors.append(repr(exc)[:200])
            conn.close()
            return
        idle.append(conn)
        if status != 201:
            errors.append(f"{status}: {body[:200]!r}")
            return
        sent[json.loads(body)["id"]] = (due, measured)
        if measured:
            post_latency.append(time.perf_counter() - due)

    # Wait until the pipeline is up (the issues service's consumer group may still be joining): one report
    # must come through before the clock starts.
    await one(time.perf_counter(), False)
    await _until(lambda: bool(sent) and all(k in seen for k in sent), 60)
    ready = bool(sent) and all(k in seen for k in sent)
    sent.clear()
    tasks: set[asyncio.Task[None]] = set()
    async for _, due, past_warmup in fixed_rate(rate, warmup, duration):
        t = asyncio.create_task(one(due, past_warmup))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    await _until(lambda: all(k in seen for k in sent), spec.get("drain_seconds", 20))
    await listener.close()
    for c in idle:
        c.close()
    measured = [k for k, (_, m) in sent.items() if m]
    latencies = [seen[k] - sent[k][0] for k in measured if k in seen]
    return {
        "rate": rate,
        "duration_s": duration,
        "sent": len(measured),
        "visible": len(latencies),
        "missing": len(measured) - len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "pipeline_ready": ready,
        "latency_ms": percentiles(latencies),
        "post_latency_ms": percentiles(post_latency),
        **await _breakdown(spec, measured),
    }


async def _breakdown(spec: dict[str, Any], report_ids: list[str]) -> dict[str, Any]:
    """Where the time went, from the rows: report committed → published by the relay and acknowledged by the
    broker (outbox ``created_at`` → ``sent_at``, stamped at the acknowledgement), and acknowledged → issue created
    by the consumer (``sent_at`` → ``issues.created_at``). The keys keep their names (``relay_pickup_ms``) so
    earlier results compare."""
    import asyncpg

    if not spec.get("points_dsn") or not report_ids:
        return {}
    points, issues = await asyncpg.connect(spec["points_dsn"]), await asyncpg.connect(spec["issues_dsn"])
    try:
        rows = await points.fetch(
            "SELECT payload::json->'data'->>'report_id' AS rid, created_at, sent_at FROM outbox "
            "WHERE payload::json->'data'->>'report_id' = ANY($1::text[])",
            report_ids,
        )
        made = {
            r["origin_id"]: r["created_at"]
            for r in await issues.fetch(
                "SELECT origin_id, created_at FROM issues WHERE origin_id = ANY($1::text[])", report_ids
            )
        }
    finally:
        await points.close()
        await issues.close()
    relay = [(r["sent_at"] - r["created_at"]).total_seconds() for r in rows if r["sent_at"]]
    consume = [(made[r["rid"]] - r["sent_at"]).total_seconds() for r in rows if r["sent_at"] and r["rid"] in made]
    return {"relay_pickup_ms": percentiles(relay), "broker_and_consumer_ms": percentiles(consume)}


async def run_kafka(spec: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from minsheng.platform.bus.kafka import KafkaBus
    from minsheng.settings import Settings

    asyncio.get_running_loop()
    topic = spec["topic"]
    await KafkaBus(spec["bootstrap"], partitions=1).ensure_topics([topic])
    producer = AIOKafkaProducer(bootstrap_servers=spec["bootstrap"], acks="all", enable_idempotence=False, linger_ms=1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=spec["bootstrap"],
        enable_auto_commit=False,
        fetch_max_wait_ms=Settings().kafka_fetch_max_wait_ms,  # as the services' consumers
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    seen: dict[bytes, float] = {}
    sent: dict[bytes, tuple[float, bool]] = {}

    async def consume() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    if r.key is not None:
                        seen.setdefault(r.key, now)

    reader = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    value = spec["body"].encode()
    rate, warmup, duration = float(spec["rate"]), spec.get("warmup", 1), spec["duration"]
    pending: list[asyncio.Future[Any]] = []
    async for i, due, past_warmup in fixed_rate(rate, warmup, duration):
        key = f"k{i}".encode()
        sent[key] = (due, past_warmup)
        pending.append(await producer.send(topic, value=value, key=key))
    await asyncio.gather(*pending)
    await _until(lambda: all(k in seen for k in sent), 10)
    reader.cancel()
    await producer.stop()
    await consumer.stop()
    latencies = [seen[k] - d for k, (d, m) in sent.items() if m and k in seen]
    measured = sum(1 for _, m in sent.values() if m)
    return {
        "rate": rate,
        "duration_s": duration,
        "sent": measured,
        "visible": len(latencies),
        "missing": measured - len(latencies),
        "errors": 0,
        "latency_ms": percentiles(latencies),
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    install_uvloop()
    result = asyncio.run(run_service(spec) if spec["mode"] == "service" else run_kafka(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
