"""Operations that hold when the broker is away or misbehaves (issue 14), on PostgreSQL:

- readiness is the database only: with the broker down ``/readyz`` answers 200, writes are accepted, and the
  broker's health shows in ``/healthz``, ``minsheng_bus_up`` and ``minsheng_bus_last_contact_age_seconds``;
- the relay stamps ``sent_at`` when the broker acknowledged a batch (not when it claimed it), and relays in
  several replicas never send a row twice;
- ``resend_since`` puts acknowledged rows back and the relay sends them again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.outbox import OutboxRelay, outbox_status, resend_since
from minsheng.platform.service import ServiceRuntime
from tests.conftest import distributed_settings
from tests.support.buses import RecordingBus
from tests.support.client import running_system
from tests.support.infra import becomes
from tests.support.tcpproxy import DurableBroker
from tests.unit.test_fire_flow import FIRE, register_rider

pytestmark = pytest.mark.integration


async def _write(runtime: ServiceRuntime, count: int, tag: str = "a") -> None:
    t = runtime.db.tables.outbox
    now = utcnow()
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.insert(t),
            [
                {
                    "id": uuid7(),
                    "topic": "points.hazard",
                    "key": f"{tag}{i:05d}",
                    "type": "x",
                    "payload": "{}",
                    "headers": {},
                    "created_at": now,
                }
                for i in range(count)
            ],
        )


async def test_sent_at_is_the_time_the_broker_acknowledged(points_runtime: ServiceRuntime) -> None:
    await _write(points_runtime, 3)
    bus = RecordingBus(delay=0.4)
    relay = OutboxRelay(points_runtime.db, bus)
    claimed_before = utcnow()
    assert await relay.publish_pending() == 3
    t = points_runtime.db.tables.outbox
    async with points_runtime.db.engine.connect() as conn:
        stamps = (await conn.execute(sa.select(t.c.sent_at))).scalars().all()
    assert all(s >= bus.acked_at[0] for s in stamps), "stamped after the acknowledgement"
    assert all(s - claimed_before >= timedelta(seconds=0.4) for s in stamps), "not at the claim"


async def test_relays_in_several_replicas_share_the_rows_and_send_each_once(points_runtime: ServiceRuntime) -> None:
    await _write(points_runtime, 1000)
    bus = RecordingBus(delay=0.01)
    relays = [OutboxRelay(points_runtime.db, bus, batch_size=50) for _ in range(3)]
    sent = await asyncio.gather(*(r.drain() for r in relays))
    assert sum(sent) == 1000 and len(bus.sent) == 1000 and len(set(bus.sent)) == 1000
    assert sum(1 for n in sent if n) >= 2, "the replicas shared the work"
    assert (await outbox_status(points_runtime.db)).pending == 0


async def test_resend_since_sends_acknowledged_events_again(points_runtime: ServiceRuntime) -> None:
    await _write(points_runtime, 10)
    bus = RecordingBus()
    relay = OutboxRelay(points_runtime.db, bus)
    await relay.drain()
    after_first = utcnow()
    await _write(points_runtime, 5, tag="b")
    await relay.drain()
    assert len(bus.sent) == 15

    assert await resend_since(points_runtime.db, after_first, dry_run=True) == 5
    assert await resend_since(points_runtime.db, after_first) == 5
    assert (await outbox_status(points_runtime.db)).pending == 5
    assert await relay.drain() == 5
    assert await resend_since(points_runtime.db, after_first - timedelta(hours=1)) == 15
    assert await relay.drain() == 15
    assert len(bus.sent) == 35 and bus.sent[-15:] == sorted(bus.sent[-15:]), "re-sent in their original order"


async def test_broker_down_the_service_stays_ready_accepts_writes_and_reports_the_broker(
    tmp_path: Path, pg_template: str
) -> None:
    broker = DurableBroker()
    broker.open()
    settings = distributed_settings(tmp_path, pg_template, broker.bootstrap, relay_max_backoff_seconds=1.0)
    try:
        async with running_system(settings, services=("points",)) as s:
            rider = await register_rider(s)
            up = (await s.client.get("/metrics")).text
            assert "minsheng_bus_up 1.0" in up and "minsheng_bus_last_contact_age_seconds" in up

            broker.stop()
            for n in range(5):
                r = await s.client.post(
                    "/points/hazard-reports", headers=rider, json={**FIRE, "latitude": FIRE["latitude"] + n * 0.01}
                )
                assert r.status_code == 201, r.text  # writes go to the outbox
            for path in ("/readyz", "/points/readyz"):
                ready = await s.client.get(path)
                assert ready.status_code == 200, ready.text  # the pods stay in their Service
            down = (await s.client.get("/metrics")).text
            assert "minsheng_bus_up 0.0" in down
            await becomes(lambda: _bus_up(s.client), False, within=20)
            health = (await s.client.get("/points/healthz")).json()
            assert health["status"] == "ok" and health["bus"]["up"] is False and health["bus"]["last_error"]
            assert health["bus"]["last_contact_age_seconds"] is not None
            assert (await outbox_status(s.runtime("points").db)).pending >= 4

            broker.start()
            await becomes(lambda: _pending(s), 0, within=60)
            assert (await s.client.get("/healthz")).json()["bus"]["up"] is True
    finally:
        broker.close()


async def _bus_up(client: Any) -> bool:
    return bool((await client.get("/healthz")).json()["bus"]["up"])


async def _pending(s: Any) -> int:
    return (await outbox_status(s.runtime("points").db)).pending


async def test_a_prefix_keeps_two_deployments_apart_on_one_cluster(
    tmp_path: Path, pg_template: str, kafka: tuple[str, Any]
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from tests.support.infra import eventually

    prefix = f"t{uuid7().hex[-6:]}."
    settings = distributed_settings(tmp_path, pg_template, kafka[0], kafka_prefix=prefix)
    async with running_system(settings) as s:
        rider = await register_rider(s)
        assert (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).status_code == 201

        async def issues() -> int:
            async with s.runtime("issues").db.engine.connect() as conn:
                return int((await conn.execute(sa.text("SELECT count(*) FROM issues"))).scalar_one())

        await becomes(issues, 1, within=30)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka[0])
        await admin.start()
        try:
            topics = set(await admin.list_topics())
            groups = {g[0] for g in await admin.list_consumer_groups()}
        finally:
            await admin.close()
        assert f"{prefix}points.hazard" in topics and f"{prefix}issues.issue" in topics
        assert f"{prefix}issues" in groups
        bus = s.bus
        assert all(c._group_id.startswith(prefix) for c in bus.consumers)  # type: ignore[attr-defined]
        assert await eventually(
            lambda: any(k[0] == f"{prefix}issues" for k in bus.committed_offsets),  # type: ignore[attr-defined]
            within=10,
        )
        async with s.runtime("issues").db.engine.connect() as conn:  # the rest of the system sees plain names
            assert (await conn.execute(sa.text("SELECT count(*) FROM dead_letters"))).scalar_one() == 0


async def test_serve_creates_a_missing_database(pg_base_url: str) -> None:
    from minsheng.platform.db import ensure_database
    from tests.support.infra import drop_databases

    template = f"{pg_base_url}/mstest_{uuid7().hex[-8:]}_{{service}}"
    url = template.replace("{service}", "points")
    try:
        assert await ensure_database(url) == url.rsplit("/", 1)[1]  # created
        assert await ensure_database(url) is None  # there now
    finally:
        await drop_databases(pg_base_url, template, ("points",))
