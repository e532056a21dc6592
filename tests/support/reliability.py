"""Helpers for the reliability suite: knobs from the environment, figures written where the README table is
built from, hazard reports to drive the rider → issues flow, and counting its effects straight from the
issues database."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from minsheng.settings import Settings
from tests.support.client import System

RESULTS_DIR = Path(__file__).resolve().parents[1] / "reliability" / "results"  # the figures the README shows


def results_dir() -> Path:
    """Where this run writes its figures: ``MINSHENG_RELIABILITY_RESULTS`` (``tests/reliability/results`` to
    refresh the committed ones), else a directory outside the checkout, so a test run leaves it as it was."""
    configured = os.environ.get("MINSHENG_RELIABILITY_RESULTS")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "minsheng-reliability"


ISSUE_CREATED = "minsheng.issues.issue.created.v1"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "mem_gb": mem_gb, "cpu": model, "python": platform.python_version()}


def record(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Print a test's figures and write them to ``<results_dir()>/<name>.json``."""
    out = {
        "test": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **figures,
    }
    text = json.dumps(out, indent=2, ensure_ascii=False, default=str)
    print(f"\n[reliability] {name}: {text}")
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(text + "\n")
    return out


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def reproducible(examples: int, **more: Any) -> settings:
    """Hypothesis settings for the reliability runs: ``examples`` cases, the same ones on every run
    (derandomized, no example database), no deadline or health checks (the servers' speed is not under test)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        **more,
    )


def hazard(i: int, *, tag: str = "", category: str = "road") -> dict[str, Any]:
    """A hazard report body; every ``i`` is far (≥ 1 km) from every other, so no duplicate detection joins
    them. Non-urgent by default (urgent ones are no different for the transport)."""
    return {
        "category": category,
        "description": f"reliability {tag} #{i}",
        "latitude": round(20 + (i % 2000) * 0.01, 5),
        "longitude": round(100 + (i // 2000) * 0.05, 5),
        "address": f"test road {i}",
        "community": "yunxing",
    }


def rider_body(i: int) -> dict[str, Any]:
    return {"name": f"骑手{i}", "platform": "meituan", "phone": f"139{i:08d}", "community": "yunxing"}


RIDER_BURST = 20  # reports one rider may send at once before the per-rider rate limit answers 429


async def register_riders(s: System, count: int, *, prefix: str = "rel-rider") -> list[dict[str, str]]:
    """``count`` riders registered in points: their headers."""
    riders = []
    for i in range(count):
        headers = s.auth("rider", sub=f"{prefix}-{i}", scopes=())
        r = await s.client.post("/points/riders", headers=headers, json=rider_body(i))
        assert r.status_code == 201, r.text
        riders.append(headers)
    return riders


def riders_for(reports: int) -> int:
    """How many riders send ``reports`` reports at once without one of them meeting the rate limit."""
    return max(1, math.ceil(reports / RIDER_BURST))


def production(*names: str) -> dict[str, Any]:
    """These settings at their production defaults, to pass over the tests' quick timings
    (``distributed_settings(..., **production("relay_poll_seconds"))``)."""
    defaults = Settings()
    return {name: getattr(defaults, name) for name in names}


async def pg_connect(database_url: str) -> Any:
    import asyncpg

    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )


async def issue_effects(issues_db_url: str, report_ids: Iterable[str]) -> dict[str, int]:
    """Effects of hazard reports in the issues database: issues per report and IssueCreated outbox rows per
    report (the latter is not protected by any unique constraint, so it shows a double handling)."""
    wanted = sorted(set(report_ids))
    conn = await pg_connect(issues_db_url)
    try:
        issues = await conn.fetch(
            "SELECT origin_id, count(*) AS n FROM issues WHERE origin_kind = 'hazard_report' "
            "AND origin_id = ANY($1::text[]) GROUP BY origin_id",
            wanted,
        )
        created = await conn.fetch(
            "SELECT payload::jsonb -> 'data' -> 'origin' ->> 'id' AS origin_id, count(*) AS n FROM outbox "
            "WHERE type = $1 AND payload::jsonb -> 'data' -> 'origin' ->> 'id' = ANY($2::text[]) GROUP BY 1",
            ISSUE_CREATED,
            wanted,
        )
        dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
    finally:
        await conn.close()
    per_issue = {r["origin_id"]: int(r["n"]) for r in issues}
    per_event = {r["origin_id"]: int(r["n"]) for r in created}
    return {
        "expected": len(wanted),
        "issues": sum(per_issue.values()),
        "lost": sum(1 for w in wanted if w not in per_issue),
        "duplicate_issues": sum(n - 1 for n in per_issue.values()),
        "duplicate_issue_created_events": sum(n - 1 for n in per_event.values()),
        "dead_letters": int(dead),
    }


async def wait_for_effects(
    issues_db_url: str, report_ids: Sequence[str], within: float
) -> tuple[dict[str, int], float]:
    """Poll until every report has its issue (or ``within`` passes). Returns the effects and the seconds taken."""
    start = time.monotonic()
    effects = await issue_effects(issues_db_url, report_ids)
    while effects["lost"] and time.monotonic() - start < within:
        await asyncio.sleep(0.25)
        effects = await issue_effects(issues_db_url, report_ids)
    return effects, time.monotonic() - start


async def warm_up(s: System, rider: dict[str, str], issues_db_url: str, i: int, *, before: str) -> None:
    """One hazard report through the whole flow (points → bus → issues) before the fault: the consumer groups
    are up and assigned, so what the test measures afterwards is the fault, not a cold start."""
    r = await s.client.post("/points/hazard-reports", headers=rider, json=hazard(i, tag="warmup"))
    assert r.status_code == 201, r.text
    effects, _ = await wait_for_effects(issues_db_url, [r.json()["id"]], within=60)
    assert effects["lost"] == 0, f"the consumer groups are up before {before}"


def assert_each_report_once(effects: dict[str, int], why: str = "") -> None:
    """Every report became exactly one issue, announced once, and nothing was dead-lettered (``why``: the
    message when one is missing)."""
    assert effects["lost"] == 0, why
    assert effects["duplicate_issues"] == 0 and effects["duplicate_issue_created_events"] == 0
    assert effects["dead_letters"] == 0


def new_key() -> str:
    return uuid.uuid4().hex


async def topic_copies(bootstrap: str, topic: str) -> dict[str, int]:
    """How many times each event id sits on ``topic`` (a relay re-send after a crash shows as 2)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    copies: dict[str, int] = {}
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                idle += 1
                continue
            idle = 0
            for records in batch.values():
                for rec in records:
                    ce_id = dict(rec.headers or ()).get("ce_id", b"").decode()
                    copies[ce_id] = copies.get(ce_id, 0) + 1
    finally:
        await consumer.stop()
    return copies
