"""A smoke run of the bench harness with tiny sizes (the real runs are ``bin/bench``; see docs/benchmarks.md):
the data generators against the services' current schemas, the load generator in both modes against the
bare baseline app as a real process, and the report writers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import datagen, report
from bench.env import BenchEnv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env() -> Iterator[BenchEnv]:
    with BenchEnv() as e:
        yield e


async def test_generators_follow_the_current_models(env: BenchEnv) -> None:
    """COPY issues and households (with their parent buildings) into databases migrated by the services'
    own migrations: a schema change that breaks the generators fails here, not in a long bench run."""
    from services.issues.models import metadata as issues_md
    from services.visits.models import metadata as visits_md

    await env.migrate("issues", "smoke_issues")
    conn = await datagen.connect(env.dsn_for("smoke_issues"))
    try:
        assert await datagen.copy_rows(conn, issues_md.tables["issues"], 300, datagen.issue_recipe(300)) == 300
        assert await conn.fetchval("SELECT count(DISTINCT community) FROM issues") == 7
    finally:
        await conn.close()
    if "households" in visits_md.tables:
        await env.migrate("visits", "smoke_visits")
        conn = await datagen.connect(env.dsn_for("smoke_visits"))
        try:
            n = await datagen.copy_rows(conn, visits_md.tables["households"], 200, datagen.household_recipe(200))
            assert n == 200 and await conn.fetchval("SELECT count(*) FROM households") == 200
        finally:
            await conn.close()


def test_load_generator_against_the_bare_app_and_the_report(env: BenchEnv, tmp_path: Path) -> None:
    bare = env.start_baseline({"docs": {"page": {"items": [{"id": i} for i in range(20)]}}})
    env.wait_ready(bare)
    closed = env.run_load(
        bare,
        {
            "mode": "closed",
            "connections": 2,
            "warmup": 0.2,
            "duration": 0.5,
            "requests": [{"path": "/bare/doc/page"}, {"path": "/bare/hello"}],
        },
    )
    assert closed["ok"] > 10 and closed["errors"] == 0 and closed["latency_ms"]["p99"] > 0
    assert closed["rss_mb_max"]["bare"] > 10 and closed["server_cpu_us_per_request"] > 0
    fixed = env.run_load(
        bare, {"mode": "open", "rate": 50, "warmup": 0.2, "duration": 0.6, "requests": [{"path": "/bare/hello"}]}
    )
    assert 20 <= fixed["requests"] <= 40 and fixed["errors"] == 0

    figure = {
        "id": "read.x",
        "group": "reads",
        "title": "X",
        "status": "ok",
        "note": "",
        "metric": "rps",
        "subject": closed,
        "baseline": closed,
        "baseline_name": "itself",
        "ratio": 1.0,
        "target": "≥ 50%",
        "met": True,
        "extra": {},
    }
    result = {
        "sizes": {"name": "smoke", "rounds": 1, "duration": 0.5, "warmup": 0.2},
        "started_at": 0,
        "figures": [figure],
        "machine": report.machine(),
        "command": "test",
    }
    written = report.write(result, tmp_path)
    assert json.loads((tmp_path / "latest.json").read_text())["figures"][0]["id"] == "read.x"
    assert "| X |" in (tmp_path / "latest.md").read_text()
    assert all(p.exists() for p in written)


def test_the_notify_figure_beside_its_baseline(env: BenchEnv, tmp_path: Path) -> None:
    """``bin/bench --only notify``: notify on PostgreSQL against the provider call alone, one short round."""

    from bench.suite import SIZES, Suite

    suite = Suite(env, SIZES["smoke"], {"notify"}, log=lambda line: None)
    suite.run_notify(rate=20)
    [fig] = suite.figures
    assert fig.status == "ok", fig.note
    assert fig.subject is not None and fig.baseline is not None
    assert fig.subject["backend"] == "postgresql" and fig.subject["accepted"] == fig.subject["events"] == 40
    assert fig.baseline["accepted"] == 40 and fig.subject["latency_ms"]["p99"] > 0 and fig.met is not None
    text = _report_of(fig, tmp_path)
    assert "## Notify: event → provider accepted (fixed rate)" in text and "notify.event_to_provider" in text


def _report_of(fig: Any, tmp_path: Path) -> str:
    """The Markdown report a run with just this figure writes."""
    from dataclasses import asdict

    result = {
        "sizes": {"name": "smoke", "rounds": 1, "duration": 1.0, "warmup": 0.3},
        "started_at": 0,
        "figures": [asdict(fig)],
        "machine": report.machine(),
        "command": "test",
    }
    report.write(result, tmp_path)
    return (tmp_path / "latest.md").read_text()


def test_the_fire_alert_figure_has_every_alert_and_no_baseline(env: BenchEnv, tmp_path: Path) -> None:
    """``bin/bench --only notify``'s other figure, two fires: ``minsheng run --demo``'s points, issues and notify
    in a process of their own, every fire's alert at the duty group's robot and the on-duty SMS. How fast is the
    figure's business (target ≤ 1 s), not this test's."""

    from bench.suite import SIZES, Suite

    suite = Suite(env, SIZES["smoke"], {"notify"}, log=lambda line: None)
    suite.run_fire_alert(fires=2, interval=0.2)
    [fig] = suite.figures
    assert fig.id == "notify.fire_to_duty_group" and fig.status == "ok", fig.note
    assert fig.subject is not None and fig.baseline is None and fig.met is not None
    sub = fig.subject
    assert sub["fires"] == sub["posted"] == sub["received"] == len(sub["latencies_ms"]) == 2
    assert sub["on_duty_sms"] is True and sub["sms_received"] == len(sub["sms_latencies_ms"]) == 2
    assert set(sub["latency_ms"]) == {"p50", "p99", "max"} and set(sub["sms"]) == {"p50_ms", "p99_ms", "max_ms"}
    text = _report_of(fig, tmp_path)
    assert "- **notify.fire_to_duty_group**: no baseline" in text


async def test_the_read_baseline_runs_the_services_own_sql(env: BenchEnv) -> None:
    """``GET /bare/read/<name>`` runs, on raw asyncpg, the SQL compiled from the service's statement: it answers
    the rows the service's query answers through SQLAlchemy, in the same order."""
    from uuid import UUID

    import httpx
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench import bare_reads
    from minsheng.platform.auth import Principal, Role
    from minsheng.platform.ids import utcnow
    from services.issues.models import metadata as issues_md
    from services.issues.queries import _ISSUE_WITH_TIMELINE, IssueFilters, _list_statement, list_query

    await env.migrate("issues", "smoke_reads")
    conn = await datagen.connect(env.dsn_for("smoke_reads"))
    try:
        await datagen.copy_rows(conn, issues_md.tables["issues"], 700, datagen.issue_recipe(700))
        community = await conn.fetchval("SELECT community FROM issues GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ids = [str(r[0]) for r in await conn.fetch("SELECT id FROM issues ORDER BY id LIMIT 3")]
    finally:
        await conn.close()
    reads = {
        "issue_list": bare_reads.issue_list("smoke-staff", [community]),
        "issue_detail": bare_reads.issue_detail(ids),
    }
    who = Principal(sub="smoke-staff", roles=frozenset({Role.staff}), scopes=(f"community:{community}",))
    shape, params = list_query(who, IssueFilters(), utcnow())
    engine = create_async_engine(env.url_for("smoke_reads"))
    try:
        async with engine.connect() as c:
            expected = [str(r.id) for r in await c.execute(_list_statement(shape, False), {**params, "limit": 51})]
            detail = [str(r.id) for r in await c.execute(_ISSUE_WITH_TIMELINE, {"issue_id": UUID(ids[1])})]
    finally:
        await engine.dispose()
    bare = env.start_baseline({"reads": reads, "read_dbs": {"issues": env.dsn_for("smoke_reads")}}, name="bare-reads")
    try:
        env.wait_ready(bare)
        async with httpx.AsyncClient(base_url=bare.url) as client:
            listed = (await client.get("/bare/read/issue_list?i=0")).json()["items"]
            one = (await client.get("/bare/read/issue_detail?i=1")).json()["items"]
    finally:
        env.stop_server(bare)
    assert len(expected) == 51 and [r["id"] for r in listed] == expected
    assert all(r["community"] == community for r in listed)
    assert [r["id"] for r in one] == detail == [ids[1]]


async def test_the_relay_figure_splits_its_cpu_between_the_relay_postgresql_and_the_broker(env: BenchEnv) -> None:
    """Both sides of the relay figure, tiny: every message published, and the CPU each costs in PostgreSQL and
    the broker counted beside the worker's own (the relay's claims and marks run in PostgreSQL, the raw
    producer's do not)."""
    from bench import relay_worker

    await env.migrate("points", "smoke_relay")
    common = {"bootstrap": env.kafka_bootstrap, "n": 2000, "batch_size": 200, "dsn": env.dsn_for("smoke_relay")}
    common["broker_pid"] = env.broker_pid
    relay = await relay_worker.run_relay(
        {**common, "mode": "relay", "topic": "smoke.relay", "url": env.url_for("smoke_relay")}
    )
    raw = await relay_worker.run_raw({**common, "mode": "raw_batch", "topic": "smoke.raw"})
    assert relay["messages"] == raw["messages"] == 2000
    assert (
        relay["postgres_cpu_us_per_message"] > 0
        and raw["postgres_cpu_us_per_message"] < relay["postgres_cpu_us_per_message"]
    )
    if env.broker_pid is not None:
        assert relay["broker_cpu_us_per_message"] > 0 and raw["broker_cpu_us_per_message"] > 0
