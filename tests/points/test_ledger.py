"""The ledger: staff adjustments with reasons, never below zero, idempotent, statements that page, expiry
first-in-first-out, and monthly leaderboards per team, community and rider."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from services.points import config, jobs, statements
from services.points.models import LedgerEntry
from tests.points.helpers import balance, credit, red_team, rider, staff
from tests.support.client import System


async def test_adjustments_need_a_reason_never_overdraw_and_are_idempotent(points: System) -> None:
    fan = await rider(points)
    h = staff(points)
    url = f"/points/riders/{fan.id}/adjustments"
    r = await points.client.post(
        url, headers={**h, "Idempotency-Key": "adj-1"}, json={"amount": 50, "reason": "Flood-season bonus"}
    )
    assert r.status_code == 201 and r.json()["balance_after"] == 50 and r.json()["cause_type"] == "adjustment"
    assert r.json()["cause_id"] and r.json()["note"].startswith("Flood-season bonus")
    again = await points.client.post(
        url, headers={**h, "Idempotency-Key": "adj-1"}, json={"amount": 50, "reason": "Flood-season bonus"}
    )
    assert again.status_code == 201 and again.json()["id"] == r.json()["id"]
    assert await balance(points, fan) == 50
    over = await points.client.post(url, headers=h, json={"amount": -51, "reason": "Correction"})
    assert over.status_code == 409 and over.json()["code"] == "insufficient_points" and over.json()["balance"] == 50
    assert (await points.client.post(url, headers=h, json={"amount": 0, "reason": "x"})).status_code == 422
    assert (await points.client.post(url, headers=h, json={"amount": 5})).status_code == 422
    ok = await points.client.post(url, headers=h, json={"amount": -50, "reason": "Correction"})
    assert ok.status_code == 201 and ok.json()["balance_after"] == 0
    # Riders cannot adjust; staff elsewhere do not see the rider.
    assert (await points.client.post(url, headers=fan.headers, json={"amount": 5, "reason": "me"})).status_code == 403
    assert (
        await points.client.post(url, headers=staff(points, "yunxing"), json={"amount": 5, "reason": "x"})
    ).status_code == 404
    entries = (await points.client.get(f"/points/riders/{fan.id}/statement", headers=h)).json()["items"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("adjusted", -50, 0),
        ("adjusted", 50, 50),
    ]
    assert "Flood-season bonus" in entries[1]["note"]


async def test_statement_pages_with_a_cursor_and_filters(points: System) -> None:
    fan = await rider(points)
    for i in range(5):
        await credit(points, fan.id, i + 1)
    seen, cursor = [], None
    while True:
        url = "/points/riders/me/statement?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await points.client.get(url, headers=fan.headers)).json()
        seen += [e["amount"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [5, 4, 3, 2, 1]
    none = (await points.client.get("/points/riders/me/statement?kind=redeemed", headers=fan.headers)).json()
    assert none["items"] == []


async def _backdate(system: System, rider_id: str, days: int) -> None:
    db = system.runtime("points").db
    entries = table_of(LedgerEntry)
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(entries)
            .where(entries.c.rider_id == UUID(rider_id))
            .values(created_at=utcnow() - timedelta(days=days))
        )


async def test_unspent_points_expire_first_in_first_out(points: System) -> None:
    fan = await rider(points)
    await credit(points, fan.id, 100)
    await _backdate(points, fan.id, 400)  # a year and more ago
    await credit(points, fan.id, 30)  # recent
    # 40 were spent since: first in, first out, they came out of the old points.
    r = await points.client.post(
        f"/points/riders/{fan.id}/adjustments", headers=staff(points), json={"amount": -40, "reason": "spent"}
    )
    assert r.status_code == 201
    b = (await points.client.get("/points/riders/me/balance", headers=fan.headers)).json()
    assert b["balance"] == 90 and b["expiring_points"] == 60

    runtime = points.runtime("points")
    assert await jobs.expire_points(runtime) == 60
    assert await jobs.expire_points(runtime) == 0  # idempotent: same day, same cause
    assert await balance(points, fan) == 30
    [entry] = (await points.client.get("/points/riders/me/statement?kind=expired", headers=fan.headers)).json()["items"]
    assert entry["amount"] == -60 and entry["cause_type"] == "expiry"
    with config.override(expiry_days=0):
        assert await jobs.expire_points(runtime) == 0
        b = (await points.client.get("/points/riders/me/balance", headers=fan.headers)).json()
        assert b["expiring_points"] == 0


async def test_monthly_leaderboards(points: System) -> None:
    red = await rider(points, "rider-red", name="樊伟明")
    h = staff(points)
    team = await red_team(points, red)
    assert team["members"] == 1
    mates = []
    for i, pts in enumerate([30, 10]):
        m = await rider(points, f"rider-y{i}", name=f"王{i}强", phone=f"1390000000{i}")
        await points.client.patch(f"/points/riders/{m.id}", headers=h, json={"team_id": team["id"]})
        await credit(points, m.id, pts)
        mates.append(m)
    loner = await rider(points, "rider-loner", community="yunxing", name="李明", phone="13600000000")
    await credit(points, loner.id, 25, community="yunxing")
    db = points.runtime("points").db
    # Adjustments are not earnings: turn them into earned entries for the leaderboard.
    entries = table_of(LedgerEntry)
    async with db.engine.begin() as conn:
        await conn.execute(sa.update(entries).values(kind="earned"))

    by_team = (await points.client.get("/points/leaderboards/team", headers=red.headers)).json()
    assert [(i["name"], i["points"], i["riders"]) for i in by_team["items"]] == [("港城红骑士1队", 40, 2)]
    by_community = (await points.client.get("/points/leaderboards/community", headers=h)).json()
    assert [(i["key"], i["points"]) for i in by_community["items"]] == [("gangcheng", 40), ("yunxing", 25)]
    riders = (await points.client.get(f"/points/leaderboards/rider?team_id={team['id']}", headers=red.headers)).json()
    assert [(i["name"], i["points"]) for i in riders["items"]] == [("王**", 30), ("王**", 10)]
    assert riders["you"] is None  # the red rider earned nothing this month: not on the board

    async def you(who: Any, board: str, **params: Any) -> Any:
        r = await points.client.get(f"/points/leaderboards/{board}", headers=who.headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()["you"]

    # A rider sees their own row and rank, also below the rows listed.
    assert (await you(mates[1], "rider", limit=1)) == {
        "rank": 3,
        "key": str(mates[1].id),
        "name": "王**",
        "points": 10,
        "riders": 1,
    }
    assert (await you(mates[1], "rider", team_id=team["id"]))["rank"] == 2
    assert (await you(mates[0], "team"))["points"] == 40 and (await you(mates[0], "team"))["rank"] == 1
    assert (await you(loner, "community", limit=1))["key"] == "yunxing"
    assert (await you(loner, "community"))["rank"] == 2
    assert (await you(loner, "rider", community="gangcheng")) is None  # filtered off this board
    assert (await points.client.get("/points/leaderboards/rider", headers=h)).json()["you"] is None  # staff
    last_year = (await points.client.get("/points/leaderboards/team?month=2025-01", headers=h)).json()
    assert last_year["items"] == [] and last_year["month"] == "2025-01"
    bad = await points.client.get("/points/leaderboards/team?month=january", headers=h)
    assert bad.status_code == 422
    assert (await points.client.get("/points/leaderboards/galaxy", headers=h)).status_code == 422


async def test_month_bounds_are_local() -> None:
    settings = config.get()
    start, end = settings.month_bounds(statements.parse_month("2026-12"))
    assert start.isoformat() == "2026-12-01T00:00:00+08:00" and end.isoformat() == "2027-01-01T00:00:00+08:00"


async def test_times_without_a_zone_are_refused(points: System) -> None:
    fan = await rider(points)
    r = await points.client.get("/points/riders/me/statement?since=2026-11-01T00:00:00", headers=fan.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.since"
    r = await points.client.get("/points/riders/me/statement?since=2026-11-01T00:00:00%2B08:00", headers=fan.headers)
    assert r.status_code == 200
    r = await points.client.post(
        "/points/tasks",
        headers=staff(points),
        json={"type_code": "x", "title": "t", "community": "gangcheng", "due_at": "2030-01-01T12:00:00"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "due_at"


async def test_expiry_works_through_every_rider_in_batches(points: System) -> None:
    riders = [await rider(points, f"rider-e{i}", name=f"张{i}", phone=f"1350000000{i}") for i in range(5)]
    for r in riders:
        await credit(points, r.id, 10)
        await _backdate(points, r.id, 400)
    runtime = points.runtime("points")
    assert await jobs.expire_points(runtime, batch=2) == 50
    assert [await balance(points, r) for r in riders] == [0] * 5
    assert await jobs.expire_points(runtime, batch=2) == 0


async def test_riders_are_told_once_a_month_before_their_points_expire(points: System) -> None:
    import json

    fan, spent_all = await rider(points), await rider(points, "rider-spent")
    await credit(points, fan.id, 100)
    await credit(points, spent_all.id, 20)
    await _backdate(points, fan.id, 350)  # expires within the 30-day warning window
    await _backdate(points, spent_all.id, 350)
    await credit(points, fan.id, 30)  # recent: not expiring
    r = await points.client.post(
        f"/points/riders/{spent_all.id}/adjustments", headers=staff(points), json={"amount": -20, "reason": "spent"}
    )
    assert r.status_code == 201
    runtime = points.runtime("points")
    assert await jobs.warn_expiring(runtime) == 1
    assert await jobs.warn_expiring(runtime) == 0  # once a month: the unique key decides
    db = runtime.db
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(t.c.payload).where(t.c.type == "minsheng.points.ledger.expiring.v1"))
        ).all()
    [told] = [json.loads(r.payload)["data"] for r in rows]
    assert told["rider_id"] == fan.id and told["points"] == 100 and told["balance"] == 130
    b = (await points.client.get("/points/riders/me/balance", headers=fan.headers)).json()
    assert b["expiring_points"] == told["points"]  # the same figure the rider's balance shows
    with config.override(expiry_days=0):
        assert await jobs.warn_expiring(runtime) == 0
