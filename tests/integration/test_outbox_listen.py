"""A relay in a process of its own is woken by PostgreSQL LISTEN/NOTIFY, not by its poll.

The web-role and relay-role runtimes below are separate ``ServiceRuntime`` objects with a ``Database`` each,
so the web role's in-process signal cannot reach the relay: only the NOTIFY can, and the relay's poll is set
to 30 s so that anything published within a second was woken by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bench.relay_wakeup import points_posted
from minsheng.contracts.points import PointsPosted
from minsheng.platform.envelope import wrap
from minsheng.platform.outbox_listener import OutboxListener
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.tasks import cancel_all
from minsheng.runner import load_spec
from tests.conftest import embedded_settings
from tests.support.buses import RecordingBus
from tests.support.infra import LocalBroker, eventually
from tests.support.processes import distributed_env, process_settings, start_service, stop, wait_ready

pytestmark = pytest.mark.integration

POLL_SECONDS = 30.0


@contextlib.asynccontextmanager
async def _started(runtime: ServiceRuntime, *, migrate: bool) -> AsyncIterator[ServiceRuntime]:
    await runtime.start(migrate=migrate, consume=False, jobs=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def split(tmp_path: Path, pg_template: str) -> AsyncIterator[tuple[ServiceRuntime, ServiceRuntime, RecordingBus]]:
    """The points service as a web-role and a relay-role runtime on one PostgreSQL database."""
    spec = load_spec("points")

    def settings(role: str) -> Any:
        base = embedded_settings(tmp_path, database_url=pg_template, role=role)
        return base.model_copy(update={"relay_poll_seconds": POLL_SECONDS})

    bus = RecordingBus()
    async with (
        _started(ServiceRuntime(spec, settings("web"), RecordingBus()), migrate=True) as web,
        _started(ServiceRuntime(spec, settings("relay"), bus), migrate=False) as relay,
    ):
        listener = relay.outbox_listener
        assert listener is not None
        await eventually(lambda: _true_or_none(listener.listening), within=10)
        # The start-up drain (the listener wakes the relay once it listens) is over.
        await asyncio.sleep(0.2)
        yield web, relay, bus


async def _true_or_none(value: bool) -> bool | None:
    return True if value else None


async def _write(runtime: ServiceRuntime) -> PointsPosted:
    event = points_posted()
    async with runtime.uow() as uow:
        uow.emit(event)
        await uow.commit()
    return event


async def _published_within(bus: RecordingBus, key: str, seconds: float) -> float:
    started = time.monotonic()
    while key not in bus.sent:
        assert time.monotonic() - started < seconds, f"not published within {seconds}s (poll is {POLL_SECONDS}s)"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_web_role_write_is_published_by_the_relay_role_at_once(
    split: tuple[ServiceRuntime, ServiceRuntime, RecordingBus],
) -> None:
    web, relay, bus = split
    assert web.db.notify_channel == "minsheng_outbox_points" and relay.db.notify_channel is None
    for _ in range(3):
        event = await _write(web)
        await _published_within(bus, str(event.rider_id), 10.0)
    assert relay.outbox_listener is not None and relay.outbox_listener.notifications >= 3


async def test_the_listener_reconnects_after_its_connection_is_killed(
    split: tuple[ServiceRuntime, ServiceRuntime, RecordingBus],
) -> None:
    web, relay, bus = split
    listener = relay.outbox_listener
    assert listener is not None and listener.connections == 1
    async with web.db.engine.connect() as conn:
        killed = await conn.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.server_pid})
    assert killed is True

    async def reconnected() -> int | None:
        return listener.connections if listener.connections == 2 and listener.listening else None

    await eventually(reconnected, within=10)
    event = await _write(web)
    await _published_within(bus, str(event.rider_id), 10.0)


async def test_a_rolled_back_write_sends_no_notification(
    split: tuple[ServiceRuntime, ServiceRuntime, RecordingBus],
) -> None:
    web, relay, bus = split
    listener = relay.outbox_listener
    assert listener is not None
    before = listener.notifications
    async with web.uow() as uow:
        uow.emit(points_posted())
        await uow.flush_outbox()  # the INSERT … RETURNING pg_notify(…) ran, in a transaction never committed
        await uow.rollback()
    await asyncio.sleep(0.5)
    assert listener.notifications == before
    # The same path, committed, does notify.
    event = await _write(web)
    await _published_within(bus, str(event.rider_id), 10.0)
    assert listener.notifications == before + 1


async def test_several_outbox_rows_and_an_inbox_row_notify_too(
    split: tuple[ServiceRuntime, ServiceRuntime, RecordingBus],
) -> None:
    web, _relay, bus = split
    events = [points_posted(), points_posted()]
    async with web.uow() as uow:
        for event in events:
            uow.emit(event)
        await uow.commit()  # the executemany INSERT
    for event in events:
        await _published_within(bus, str(event.rider_id), 10.0)
    # The consumer's path: the inbox row and the outbox row in one statement.
    handled = points_posted()
    async with web.uow() as uow:
        await uow.mark_processed(wrap(handled, service="issues"))
        uow.emit(handled)
        await uow.commit()
    await _published_within(bus, str(handled.rider_id), 10.0)


async def test_only_a_process_whose_relay_runs_elsewhere_notifies(tmp_path: Path, pg_template: str) -> None:
    spec = load_spec("points")
    for role, channel in (("all", None), ("consumer", "minsheng_outbox_points"), ("web", "minsheng_outbox_points")):
        runtime = ServiceRuntime(spec, embedded_settings(tmp_path, database_url=pg_template, role=role), RecordingBus())
        async with _started(runtime, migrate=role == "all"):
            assert runtime.db.notify_channel == channel, role
            assert runtime.outbox_listener is None  # only the relay role listens
    # SQLite (one process): never.
    runtime = ServiceRuntime(spec, embedded_settings(tmp_path, role="web"), RecordingBus())
    async with _started(runtime, migrate=True):
        assert runtime.db.notify_channel is None


async def test_a_relay_process_is_woken_by_a_web_role_commit_and_after_its_listen_connection_is_killed(
    pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    """The real thing: ``minsheng serve points --role relay`` as a process of its own, on Kafka, polling every
    30 s; the outbox row a web-role commit writes is acknowledged by the broker (``sent_at``) within seconds."""
    env = distributed_env(pg_template, kafka[0], MINSHENG_RELAY_POLL_SECONDS=str(POLL_SECONDS))
    settings = process_settings(env).model_copy(update={"role": "web"})
    web = ServiceRuntime(load_spec("points"), settings, RecordingBus())
    async with _started(web, migrate=True):
        relay = start_service("points", {**env, "MINSHENG_ROLE": "relay"})
        try:
            await asyncio.to_thread(wait_ready, relay)
            await _sent_within(web, await _write(web), 3.0)
            async with web.db.engine.connect() as conn:
                killed = await conn.scalar(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
            assert killed == 1
            await asyncio.sleep(1.0)  # the listener reconnects (backoff from 0.1 s)
            await _sent_within(web, await _write(web), 3.0)
            async with httpx.AsyncClient(timeout=5) as http:
                health = (await http.get(f"{relay.url}/healthz")).json()
            assert health["outbox_listener"]["listening"] is True
            assert health["outbox_listener"]["connections"] == 2
            assert health["outbox_listener"]["notifications"] >= 1
        finally:
            stop(relay)
        assert "LISTEN connection lost" in relay.log(), relay.log()


async def _sent_within(runtime: ServiceRuntime, event: PointsPosted, seconds: float) -> None:
    outbox = runtime.db.tables.outbox
    query = sa.select(outbox.c.sent_at).where(outbox.c.key == str(event.rider_id))
    started = time.monotonic()
    for _ in range(int(seconds / 0.02)):
        async with runtime.db.engine.connect() as conn:
            if (await conn.scalar(query)) is not None:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not sent within {time.monotonic() - started:.1f}s (the relay polls every {POLL_SECONDS}s)")


class _FlakyDatabase:
    """A database whose first ``failures`` connection attempts fail (a database that is restarting)."""

    def __init__(self, db: Any, failures: int) -> None:
        self.db, self.failures, self.attempts = db, failures, 0
        self.outbox_signal = asyncio.Event()

    async def connect_driver(self) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("the database system is starting up")
        return await self.db.connect_driver()


async def test_the_listener_keeps_trying_until_the_database_answers(points_runtime: ServiceRuntime) -> None:
    runtime = points_runtime
    flaky = _FlakyDatabase(runtime.db, failures=3)
    listener = OutboxListener(flaky, "minsheng_outbox_points", max_backoff_seconds=0.2)  # type: ignore[arg-type]
    task = asyncio.create_task(listener.run())
    try:
        await eventually(lambda: _true_or_none(listener.listening), within=10)
        assert flaky.attempts == 4 and listener.connections == 1
        assert flaky.outbox_signal.is_set()  # it drains what was committed while nobody listened
        flaky.outbox_signal.clear()
        async with runtime.db.engine.begin() as conn:
            await conn.execute(sa.text("NOTIFY minsheng_outbox_points"))
        await eventually(lambda: _true_or_none(flaky.outbox_signal.is_set()), within=5)
        assert listener.notifications == 1
    finally:
        await cancel_all([task])
