"""The visits service on real PostgreSQL (in-process bus) and across a real Kafka-protocol broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.visits import config, jobs
from services.visits.demo import seed_demo
from services.visits.demo_data import ZHAO_HOUSEHOLD
from tests.support.client import System
from tests.support.infra import eventually
from tests.visits.helpers import build_place
from tests.visits.test_flows import escalated_need, issue_for

pytestmark = pytest.mark.integration


async def test_visits_ledger_and_escalation_on_postgres(pg_system: System) -> None:
    s = pg_system
    p = await build_place(s)
    need = await escalated_need(p)
    await s.settle()
    issue = await issue_for(s, p.staff, need["id"])
    assert issue is not None
    r = await s.client.post(f"/issues/issues/{issue['id']}/resolve", headers=p.staff, json={"note": "修好了"})
    assert r.status_code == 200, r.text
    await s.settle()
    closed = await p.get(f"/needs/{need['id']}", p.worker)
    assert closed["status"] == "closed" and closed["closed_via"] == "issue" and closed["issue_id"] == issue["id"]

    # A resolved need nobody answers about is confirmed by the job a week later (SKIP LOCKED on PostgreSQL).
    v = await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "needs": [{"category": "health", "title": "需要上门测血压"}],
        },
        201,
    )
    nid = v["needs"][0]["id"]
    await p.post(f"/needs/{nid}/resolve", p.worker, {"resolution": "社区医生每周上门"})
    assert await jobs.auto_confirm_needs(s.runtime("visits")) == 0
    try:
        config.pin_clock(datetime.now(UTC) + timedelta(days=8))
        assert await jobs.auto_confirm_needs(s.runtime("visits")) == 1
    finally:
        config.pin_clock(None)
    auto = await p.get(f"/needs/{nid}", p.worker)
    assert auto["status"] == "confirmed" and auto["closed_via"] == "auto"

    cov = await p.get("/coverage", p.staff, params={"by": "worker"})
    assert cov["rows"][0]["needs_closed"] == 2 and cov["rows"][0]["visited"] == 1
    assert (await p.get("/due", p.worker, params={"within_days": 7}))["households"][0]["id"] == p.household_id


async def test_demo_data_on_postgres(pg_system: System) -> None:
    runtime = pg_system.runtime("visits")
    started = time.perf_counter()
    await seed_demo(runtime)
    elapsed = time.perf_counter() - started
    await seed_demo(runtime)  # idempotent
    admin = pg_system.auth("admin", sub="admin")
    communities = (await pg_system.client.get("/visits/communities", headers=admin)).json()["items"]
    assert len(communities) == 7 and sum(c["compounds"] for c in communities) == 89
    bill = (await pg_system.client.get(f"/visits/households/{ZHAO_HOUSEHOLD}/bill", headers=admin)).json()
    assert bill["members"] == ["赵桂香"] and bill["done"] == 1
    started = time.perf_counter()
    cov = (await pg_system.client.get("/visits/coverage", headers=admin, params={"by": "compound"})).json()
    assert len(cov["rows"]) == 89
    assert elapsed < 20 and time.perf_counter() - started < 5


async def test_escalation_loop_over_kafka(kafka_system: System) -> None:
    s = kafka_system
    p = await build_place(s)
    need = await escalated_need(p)

    async def issue() -> dict[str, Any] | None:
        return await issue_for(s, p.staff, need["id"])

    found = await eventually(issue, within=30)

    async def linked() -> bool:
        return (await p.get(f"/needs/{need['id']}", p.worker))["issue_id"] == found["id"]

    await eventually(linked, within=30)
    r = await s.client.post(f"/issues/issues/{found['id']}/resolve", headers=p.staff, json={"note": "已修复"})
    assert r.status_code == 200, r.text

    async def closed() -> dict[str, Any] | None:
        n = await p.get(f"/needs/{need['id']}", p.worker)
        return n if n["status"] == "closed" else None

    done = await eventually(closed, within=30)
    assert done["closed_via"] == "issue" and done["resolution"] == "已修复"


async def test_absence_alert_to_welfare_check_over_kafka(kafka_system: System) -> None:
    from uuid import UUID

    from tests.visits.test_flows import _alert

    s = kafka_system
    p = await build_place(s)
    alert = _alert(UUID(p.zhao_id))
    async with s.runtime("canteen").uow() as uow:
        uow.emit(alert)
        await uow.commit()

    async def task() -> dict[str, Any] | None:
        items = (await p.get("/tasks", p.worker))["items"]
        return items[0] if items else None

    found = await eventually(task, within=30)
    assert found["kind"] == "welfare_check" and found["alert_id"] == str(alert.alert_id) and found["urgent"]
    visit = await p.post("/visits", p.worker, {"household_id": p.household_id, "outcome": "visited"}, 201)
    assert visit["tasks_completed"] == [found["id"]]
