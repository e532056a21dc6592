"""What the NOTIFY costs a commit, and what it saves an event, in the role split (PostgreSQL):

    python -m bench.relay_wakeup [--commits 600] [--rate 20] [--seconds 5]

- ``commit``: a web-role unit of work writing one outbox row (INSERT + COMMIT, the write path's outbox part),
  timed per commit, in alternating blocks with and without ``RETURNING pg_notify(…)`` in the INSERT.
- ``latency``: commit returned → the relay's publish acknowledged, events written at ``--rate`` per second by a
  web-role ``Database`` and relayed by a relay-role ``OutboxRelay`` on a ``Database`` of its own (as in two
  processes: the web role's in-process signal cannot reach it). ``poll``: the relay polls every 1 s, nothing
  notifies (before); ``notify``: the web role notifies, the relay LISTENs (after). The bus is a stand-in that
  acknowledges at once (the broker's produce time is not in the figure), or with ``--kafka`` a local Apache
  Kafka (acks=all).

Prints one JSON document. Both sides run in this one process, on one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from minsheng.contracts.points import PointsPosted
from minsheng.localinfra.kafka import kafka_broker
from minsheng.localinfra.postgres import postgres_server
from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.db import Database, create_database_if_missing
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.migrations import upgrade
from minsheng.platform.outbox import OutboxRelay
from minsheng.platform.outbox_listener import OutboxListener, outbox_channel
from minsheng.platform.tasks import cancel_all
from minsheng.platform.uow import UnitOfWork
from minsheng.runner import load_spec

CHANNEL = outbox_channel("points")


class AckClock:
    """Notes when each key's publish was acknowledged: by ``broker`` (a started ``KafkaBus``), or at once."""

    def __init__(self, broker: KafkaBus | None = None) -> None:
        self.broker = broker
        self.acked: dict[str, float] = {}

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.broker is not None:
            await self.broker.publish(messages)
        now = time.perf_counter()
        for message in messages:
            self.acked[message.key] = now


def points_posted() -> PointsPosted:
    """A fresh event to put in an outbox (the integration tests of the relay's wake-up use it too)."""
    return PointsPosted(
        entry_id=uuid7(),
        rider_id=uuid7(),
        kind="earned",
        amount=20,
        balance_after=20,
        cause_type="hazard_report",
        cause_id=str(uuid7()),
        posted_at=utcnow(),
    )


async def _commit(db: Database) -> str:
    event = points_posted()
    async with UnitOfWork(db, "points") as uow:
        uow.emit(event)
        await uow.commit()
    return str(event.rider_id)


def _summary(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "max_ms": round(ordered[-1], 3),
    }


async def commit_cost(db: Database, commits: int) -> dict[str, Any]:
    for _ in range(50):  # warm-up: statements compiled, connections open
        await _commit(db)
    timings: dict[str, list[float]] = {"without_notify": [], "with_notify": []}
    cpu = dict.fromkeys(timings, 0.0)
    block = 50
    for i in range(commits // block):
        label = "with_notify" if i % 2 else "without_notify"
        db.notify_channel = CHANNEL if label == "with_notify" else None
        cpu_started = time.process_time()
        for _ in range(block):
            started = time.perf_counter()
            await _commit(db)
            timings[label].append((time.perf_counter() - started) * 1000)
        cpu[label] += time.process_time() - cpu_started
    db.notify_channel = None
    return {
        label: {**_summary(values), "client_cpu_us_per_commit": round(cpu[label] / len(values) * 1e6, 1)}
        for label, values in timings.items()
    }


async def latency(
    url: str, tables: Any, broker: KafkaBus | None, *, notify: bool, rate: float, seconds: float
) -> dict[str, Any]:
    web, relay_db = Database(url, tables, pool_size=4), Database(url, tables, pool_size=2)
    web.notify_channel = CHANNEL if notify else None
    clock = AckClock(broker)
    relay = OutboxRelay(relay_db, clock, poll_seconds=1.0)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(relay.run())]
    if notify:
        listener = OutboxListener(relay_db, CHANNEL)
        tasks.append(asyncio.create_task(listener.run()))
        for _ in range(1000):
            if listener.listening:
                break
            await asyncio.sleep(0.01)
    await asyncio.sleep(1.2)  # the start-up drain is over
    committed: dict[str, float] = {}
    try:
        for _ in range(int(rate * seconds)):
            key = await _commit(web)
            committed[key] = time.perf_counter()
            await asyncio.sleep(1 / rate)
        for _ in range(100):  # the last ones: at most one poll (1 s) before, far less after
            if not set(committed) - set(clock.acked):
                break
            await asyncio.sleep(0.05)
    finally:
        await cancel_all(tasks)
        await web.dispose()
        await relay_db.dispose()
    return _summary([(clock.acked[k] - t) * 1000 for k, t in committed.items() if k in clock.acked])


async def main(commits: int, rate: float, seconds: float, kafka: bool) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        broker = None
        if kafka:
            bootstrap, _ = stack.enter_context(kafka_broker())
            broker = KafkaBus(bootstrap, client_id="msbench-wakeup", partitions=1)
            await broker.start()
            await broker.ensure_topics([PointsPosted.topic])
        try:
            return await _measure(commits, rate, seconds, broker)
        finally:
            if broker is not None:
                await broker.stop()


async def _measure(commits: int, rate: float, seconds: float, broker: KafkaBus | None) -> dict[str, Any]:
    spec = load_spec("points")
    with postgres_server() as base:
        url = make_url(base).set(database=f"bench_wakeup_{uuid.uuid4().hex[:8]}").render_as_string(False)
        await create_database_if_missing(url)
        try:
            db = Database(url, spec.tables, pool_size=4)
            await upgrade(db, "points", spec.migrations_dir)
            result = {"commit": await commit_cost(db, commits)}
            await db.dispose()
            result["latency"] = {
                "bus": "Apache Kafka (acks=all)" if broker else "stand-in (acknowledges at once)",
                "poll": await latency(url, spec.tables, broker, notify=False, rate=rate, seconds=seconds),
                "notify": await latency(url, spec.tables, broker, notify=True, rate=rate, seconds=seconds),
            }
            return result
        finally:
            parsed = make_url(url)
            admin = await asyncpg.connect(
                host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password, database="postgres"
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--kafka", action="store_true", help="publish to a local Apache Kafka, not a stand-in")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.commits, args.rate, args.seconds, args.kafka)), indent=2))
