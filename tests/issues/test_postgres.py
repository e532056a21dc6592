"""The issues service on real PostgreSQL: migrations, concurrency guarantees (duplicate intake, one ballot
per household, sweeps in several replicas) and the figures' SQL (percentile_cont, local months)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from minsheng.contracts.points import HazardReported
from minsheng.platform.bus.base import Delivery
from minsheng.platform.envelope import wrap
from minsheng.platform.ids import utcnow, uuid7
from services.issues.jobs import auto_confirm, sweep_overdue
from tests.issues import test_deadlines, test_votes
from tests.issues.helpers import FLOOD, NEARBY, act, events_of, report, resident, staff
from tests.issues.test_figures import seed
from tests.issues.test_votes import open_vote
from tests.support.client import System

pytestmark = pytest.mark.integration


async def test_concurrency_guarantees(pg_issues: System) -> None:
    """Simultaneous duplicate reports open one issue; a household's members voting at once cast one ballot;
    overdue sweeps and auto-confirmation running in three "replicas" announce each deadline once."""
    s = pg_issues
    answers = await asyncio.gather(
        *[s.client.post("/issues/issues", headers=resident(s, f"res-{n}"), json={**FLOOD, **NEARBY}) for n in range(6)]
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    [issue] = (await s.client.get("/issues/issues", headers=staff(s))).json()["items"]
    assert issue["reporter_count"] == 6 and len(await events_of(s, "created")) == 1

    vote = await open_vote(s)
    members = [resident(s, f"res-{n}", household="hh-1") for n in range(5)]
    ballots = await asyncio.gather(
        *[s.client.post(f"/issues/votes/{vote['id']}/ballots", headers=h, json={"option": "1"}) for h in members]
    )
    assert sorted(a.status_code for a in ballots) == [201] + [409] * 4
    closed = (await s.client.post(f"/issues/votes/{vote['id']}/close", headers=staff(s))).json()
    assert closed["ballots_cast"] == 1

    rt = s.runtime("issues")
    desk = staff(s)
    ids = [(await report(s, resident(s, f"res-{n}"), {**FLOOD, "latitude": 40.1 + n / 100}))["id"] for n in range(7)]
    for iid in ids[:3]:
        await act(s, iid, "resolve", desk)
    later = utcnow() + timedelta(days=8)
    counts = await asyncio.gather(*[sweep_overdue(rt, now=later) for _ in range(3)])
    assert sum(counts) == 10  # 5 open issues × 2 deadlines
    assert len(await events_of(s, "overdue")) == 10
    confirmed = await asyncio.gather(auto_confirm(rt, now=later), auto_confirm(rt, now=later))
    assert sorted(confirmed) == [0, 3]


async def test_figures_on_postgres(pg_issues: System) -> None:
    s = pg_issues
    await seed(s)
    [row] = (await s.client.get("/issues/figures", params={"community": "yuntai"})).json()["rows"]
    assert (row["handled"], row["completed"], row["closed"], row["completion_rate"]) == (5, 2, 4, 0.5)
    assert row["median_first_response_minutes"] == 150.0 and row["median_resolution_hours"] == 20.0
    assert row["overdue"] == 1
    month = (utcnow() + timedelta(hours=8)).strftime("%Y-%m")
    rows = (await s.client.get("/issues/figures", params=[("group_by", "month"), ("group_by", "community")])).json()[
        "rows"
    ]
    assert [(r["month"], r["community"], r["handled"]) for r in rows] == [(month, "nanjie", 1), (month, "yuntai", 5)]
    r = await s.client.get("/issues/open311/v2/requests.json")
    assert r.status_code == 200 and len(r.json()) == 6


async def test_simultaneous_hazard_events_open_one_issue(pg_issues: System) -> None:
    """Riders' reports of one fire handled at once (the consumer's origin look-up takes the dedupe lock in the
    same statement): one issue, the others attached to it; a redelivered event changes nothing."""
    s = pg_issues
    consumer = s.runtime("issues").consumer
    reports = [
        HazardReported(
            report_id=uuid7(),
            rider_id=uuid7(),
            category="fire",
            urgent=True,
            description=f"Bin on fire ({n})",
            latitude=40.0134,
            longitude=112.7032,
            community="yunxing",
            reported_at=utcnow(),
        )
        for n in range(5)
    ]
    deliveries = [
        Delivery(
            topic=HazardReported.topic,
            key=str(r.report_id),
            headers=[],
            value=wrap(r, service="points").model_dump_json().encode(),
        )
        for r in reports
    ]
    handled = await asyncio.gather(*[consumer.handle(d) for d in deliveries])
    assert handled == [True] * 5
    assert await consumer.handle(deliveries[0]) is False  # the inbox: already handled
    [issue] = (await s.client.get("/issues/issues", headers=staff(s, "staff-1", "community:yunxing"))).json()["items"]
    assert issue["reporter_count"] == 5 and issue["urgent"]
    assert len(await events_of(s, "created")) == 1 and len(await events_of(s, "linked")) == 4


async def test_list_filters_and_pages_on_postgres(pg_issues: System) -> None:
    """Each list shape (visibility × filters, with a cursor) runs on PostgreSQL with its values bound."""
    s = pg_issues
    jiao, desk = resident(s), staff(s)
    ids = [(await report(s, jiao, {**FLOOD, "latitude": 40.1 + n / 100}))["id"] for n in range(5)]
    await act(s, ids[0], "assign", desk, {"departments": ["public_works"]})
    await act(s, ids[1], "resolve", desk)

    async def listed(headers: dict[str, str], **params: Any) -> list[str]:
        r = await s.client.get("/issues/issues", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    newest_first = ids[::-1]
    assert await listed(desk) == newest_first
    assert await listed(desk, status=["submitted", "resolved"]) == [*newest_first[:3], ids[1]]
    assert await listed(desk, status="assigned", community="yuntai", category="flooding") == [ids[0]]
    assert await listed(desk, department="public_works", urgent=False, overdue=False) == [ids[0]]
    assert await listed(staff(s, "dept-1", "department:public_works")) == [ids[0]]
    assert await listed(desk, lat=40.1, lng=112.6983, radius_m=500) == [ids[0]]
    assert await listed(jiao, mine=True, channel="resident") == newest_first
    assert await listed(resident(s, "res-other")) == newest_first  # public issues
    first = (await s.client.get("/issues/issues", headers=desk, params={"limit": 2})).json()
    rest = await listed(desk, cursor=first["next_cursor"], created_from="2020-01-01T00:00:00Z")
    assert [i["id"] for i in first["items"]] + rest == newest_first


async def test_escalation_list_pages_on_postgres(pg_issues: System) -> None:
    """The escalation list's keyset mixes directions (most escalated, then longest overdue)."""
    await test_deadlines.test_overdue_issues_escalate_once_per_deadline(pg_issues)


async def test_vote_list_on_postgres(pg_issues: System) -> None:
    await test_votes.test_the_vote_list_shows_each_caller_what_each_vote_shows_them(pg_issues)
