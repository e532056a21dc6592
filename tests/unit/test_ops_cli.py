"""Operator commands for a broker that misbehaved (issue 14): ``outbox resend``, ``dlq replay`` on a poison
message, ``dlq discard``; the settings every Kafka name and the topic plan come from; the jittered backoff."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from minsheng import SERVICES
from minsheng.cli import app
from minsheng.platform.bus.kafka import KafkaBus, topic_partitions
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.retry import Backoff, full_jitter
from minsheng.runner import load_spec, make_bus
from minsheng.settings import KafkaSettings, Settings
from minsheng.topics import topic_plan

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINSHENG_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MINSHENG_DATABASE_URL", raising=False)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    return tmp_path


def _run(data_dir: Path, service: str, statements: list[sa.Executable]) -> list[sa.Row[object]]:
    async def go() -> list[sa.Row[object]]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / f'{service}.db'}")
        rows: list[sa.Row[object]] = []
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(statement)
                if result.returns_rows:
                    rows += list(result.all())
        await engine.dispose()
        return rows

    return asyncio.run(go())


def test_outbox_resend_puts_acknowledged_events_back_since_a_time(data_dir: Path) -> None:
    t = load_spec("points").tables.outbox
    now = utcnow()
    rows = [
        {
            "id": uuid7(),
            "topic": "points.hazard",
            "key": f"k{i}",
            "type": "x",
            "payload": "{}",
            "headers": {},
            "created_at": now - timedelta(hours=h),
            "sent_at": now - timedelta(hours=h) + timedelta(seconds=1),
        }
        for i, h in enumerate((5, 3, 1))
    ]
    rows.append({**rows[0], "id": uuid7(), "key": "unsent", "sent_at": None})
    _run(data_dir, "points", [sa.insert(t).values(rows)])

    dry = runner.invoke(app, ["outbox", "resend", "--service", "points", "--since", "4h", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would re-send 2 events" in dry.output
    assert "pending=1 " in runner.invoke(app, ["outbox", "status", "points"]).output

    since = (now - timedelta(hours=4)).isoformat()
    until = (now - timedelta(hours=2)).isoformat()
    done = runner.invoke(app, ["outbox", "resend", "--service", "points", "--since", since, "--until", until])
    assert done.exit_code == 0 and "re-sending 1 events" in done.output, done.output
    pending = _run(data_dir, "points", [sa.select(t.c.key).where(t.c.sent_at.is_(None)).order_by(t.c.key)])
    assert [r.key for r in pending] == ["k1", "unsent"]  # 3 h ago: inside the window; 5 h and 1 h: outside

    every = runner.invoke(app, ["outbox", "resend", "--since", "1d"])  # all services
    assert every.exit_code == 0 and every.output.count("re-sending") == len(SERVICES)
    assert "points   re-sending 2 events" in every.output
    assert runner.invoke(app, ["outbox", "resend", "--since", "yesterday"]).exit_code == 2  # refused, clearly


POISON = {
    "specversion": "1.0",
    "source": "/services/points",
    "type": "minsheng.points.hazard.reported.v1",
    "data": {"report_id": "not-a-uuid"},
}  # violates its contract: can never be handled


def _dead_letter(data_dir: Path, payload: str) -> str:
    dead_id = uuid7()
    t = load_spec("issues").tables.dead_letters
    _run(
        data_dir,
        "issues",
        [
            sa.insert(t).values(
                id=dead_id,
                event_id=str(uuid7()),
                event_type=POISON["type"],
                topic="points.hazard",
                key="k",
                payload=payload,
                headers={},
                error="PoisonMessage: violates its contract",
                attempts=1,
                created_at=utcnow(),
            )
        ],
    )
    return str(dead_id)


def test_dlq_replay_of_a_poison_message_reports_it_keeps_it_and_exits_cleanly(data_dir: Path) -> None:
    dead_id = _dead_letter(data_dir, json.dumps({**POISON, "id": str(uuid7()), "time": utcnow().isoformat()}))
    replayed = runner.invoke(app, ["dlq", "replay", "issues"])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.exception is None or isinstance(replayed.exception, SystemExit)
    assert f"{dead_id}: still failing: PoisonMessage" in replayed.output
    assert "0 replayed, 1 still failing" in replayed.output
    listed = json.loads(runner.invoke(app, ["dlq", "list", "issues"]).stdout)
    assert listed["id"] == dead_id and listed["attempts"] == 2 and listed["discarded"] is False  # kept, counted

    assert runner.invoke(app, ["dlq", "discard", "issues"]).exit_code == 2  # names nothing: refused
    assert runner.invoke(app, ["dlq", "discard", "issues", "--id", "nonsense"]).exit_code == 2
    discarded = runner.invoke(app, ["dlq", "discard", "issues", "--id", dead_id])
    assert discarded.exit_code == 0 and f"{dead_id}: discarded" in discarded.output, discarded.output
    assert runner.invoke(app, ["dlq", "list", "issues"]).output == ""  # out of the replay queue and the gauge
    kept = json.loads(runner.invoke(app, ["dlq", "list", "issues", "--all"]).stdout)
    assert kept["id"] == dead_id and kept["discarded"] is True and "PoisonMessage" in kept["error"]
    assert "1 replayed" not in runner.invoke(app, ["dlq", "replay", "issues"]).output  # nothing left to replay

    second = _dead_letter(data_dir, "not json at all")
    everything = runner.invoke(app, ["dlq", "discard", "issues", "--all"])
    assert everything.exit_code == 0 and f"{second}: discarded" in everything.output


def test_serve_without_a_reachable_database_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINSHENG_IDENTITY_JWKS_URL", "http://127.0.0.1:1/identity/.well-known/jwks.json")
    monkeypatch.setenv("MINSHENG_FIELD_ENCRYPTION_KEY", "bWluc2hlbmctZW1iZWRkZWQtZGV2LWtleS0zMmJ5dGU=")
    monkeypatch.setenv("MINSHENG_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/minsheng_{service}")
    result = runner.invoke(app, ["serve", "points"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output and "Traceback" not in result.output

    # Not migrating (a migration job does): the server may still be starting — serve anyway, not ready yet.
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    monkeypatch.setenv("MINSHENG_MIGRATE_ON_START", "false")
    result = runner.invoke(app, ["serve", "points"])
    assert result.exit_code == 0 and served and "starting anyway" in result.output


def test_one_source_for_partitions_and_the_prefix_on_every_kafka_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(KafkaSettings.model_fields):
        monkeypatch.delenv(f"MINSHENG_{name.upper()}", raising=False)
    defaults = KafkaSettings()
    plan = {t.name: t for t in topic_plan()}
    assert plan["points.hazard"].partitions == defaults.kafka_topic_partitions == 6
    assert plan["issues.dlq"].partitions == 1 == topic_partitions("issues.dlq", 6)
    bus = make_bus(Settings(mode="distributed", database_url="sqlite+aiosqlite://", field_encryption_key="eA=="))
    assert isinstance(bus, KafkaBus) and bus.partitions == defaults.kafka_topic_partitions  # services agree

    monkeypatch.setenv("MINSHENG_KAFKA_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("MINSHENG_KAFKA_PREFIX", "staging.")
    plan = {t.name: t for t in topic_plan()}
    assert set(plan) == {f"staging.{n}" for n in {t.name for t in topic_plan(KafkaSettings(kafka_prefix=""))}}
    assert plan["staging.points.hazard"].partitions == 12 and plan["staging.issues.dlq"].partitions == 1
    listed = runner.invoke(app, ["topics", "list"])
    assert listed.exit_code == 0 and "staging.points.hazard" in listed.output and "partitions=12" in listed.output

    bus = KafkaBus("127.0.0.1:1", prefix="staging.")
    assert bus.kafka_name("issues") == "staging.issues" and bus.kafka_name("issues.dlq") == "staging.issues.dlq"
    assert bus.plain_name("staging.points.hazard") == "points.hazard"
    with pytest.raises(ValueError, match="MINSHENG_KAFKA_PREFIX"):
        KafkaSettings(kafka_prefix="bad prefix/")


def test_backoff_has_full_jitter_within_its_cap() -> None:
    rng = random.Random(7)
    delays = [full_jitter(0.1, 5.0, attempt, rng=rng) for attempt in range(12) for _ in range(200)]
    assert all(0 <= d <= 5.0 for d in delays)
    first = [full_jitter(0.1, 5.0, 0, rng=rng) for _ in range(500)]
    assert max(first) <= 0.1 and len({round(d, 6) for d in first}) > 400  # spread, not lock-step
    late = [full_jitter(0.1, 5.0, 20, rng=rng) for _ in range(2000)]
    assert 2.0 < sum(late) / len(late) < 3.0  # uniform over [0, cap]: mean ≈ cap / 2
    assert full_jitter(0.0, 5.0, 3) == 0.0 and full_jitter(0.1, 5.0, 10_000) <= 5.0

    backoff = Backoff(0.5, 10.0, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(min(10.0, 0.5 * 2**backoff.attempt))
        assert backoff.next_delay() <= ceilings[-1]
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_delay() <= 0.5


async def test_consumer_lag_is_not_clamped_when_offsets_lie_beyond_the_log_end() -> None:
    from aiokafka import TopicPartition

    tp = TopicPartition("points.hazard", 0)

    class Consumer:  # what consumer_lag reads of an AIOKafkaConsumer
        _group_id = "issues"

        def assignment(self) -> set[TopicPartition]:
            return {tp}

        def highwater(self, _: TopicPartition) -> int:
            return 3  # the log came back with 3 records

    bus = KafkaBus("127.0.0.1:1")
    bus.consumers.append(Consumer())  # type: ignore[arg-type]
    bus.committed_offsets[("issues", "points.hazard", 0)] = 150  # what this process had committed
    assert await bus.consumer_lag() == [("issues", "points.hazard", 0, -147)]
