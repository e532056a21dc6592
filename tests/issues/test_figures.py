"""Honest figures: completion rate = (resolved + confirmed) ÷ closed, closed-unresolved and rejected counted
separately; medians; overdue; per community/category/month; CSV for staff."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import timedelta
from typing import Any

from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.issues import figures
from tests.issues.helpers import FLOOD, act, report, resident, staff, update_issue
from tests.support.client import System


async def seed(s: System) -> dict[str, str]:
    desk = staff(s)
    ids: dict[str, str] = {}
    for n, name in enumerate("ABCDEF"):
        ids[name] = (await report(s, resident(s, f"res-{name}"), {**FLOOD, "latitude": 40.0 + n / 100}))["id"]
    await act(s, ids["A"], "resolve", desk)
    await act(s, ids["A"], "confirm", resident(s, "res-A"), {"rating": 5})
    await act(s, ids["B"], "resolve", desk)
    await act(s, ids["C"], "close-unresolved", desk, {"reason": "业主拒绝"})
    await act(s, ids["D"], "reject", desk, {"reason": "重复"})
    await act(s, ids["F"], "merge", desk, {"into": ids["E"]})
    start = utcnow() - timedelta(days=2)
    timing = {"A": (1, 10), "B": (3, 30), "C": (2, None), "D": (4, None)}
    for name, iid in ids.items():
        fields = {
            "created_at": start,
            "first_response_due_at": start + timedelta(days=1),
            "resolution_due_at": start + timedelta(days=7),
        }
        if name in timing:
            first, resolved = timing[name]
            fields["first_responded_at"] = start + timedelta(hours=first)
            if resolved:
                fields["resolved_at"] = start + timedelta(hours=resolved)
        await update_issue(s, iid, **fields)
    ids["G"] = (
        await report(
            s,
            resident(s, "res-G", community="nanjie", compound="nanjie-old-town"),
            {"category": "road", "description": "井盖缺失", "community": "nanjie"},
        )
    )["id"]
    return ids


async def test_completion_rate_is_honest(issues: System) -> None:
    await seed(issues)
    r = await issues.client.get("/issues/figures", params={"community": "yuntai"})  # public: no token
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    assert row["handled"] == 5  # the merged duplicate is not a separate request
    assert (row["completed"], row["confirmed"], row["resolved_awaiting_confirmation"]) == (2, 1, 1)
    assert (row["closed_unresolved"], row["rejected"], row["closed"], row["open"]) == (1, 1, 4, 1)
    assert row["completion_rate"] == 0.5 and row["completion_rate_excluding_rejected"] == 0.6667
    assert row["median_first_response_minutes"] == 150.0  # 1, 2, 3, 4 hours
    assert row["median_resolution_hours"] == 20.0  # 10 and 30 hours
    assert row["overdue"] == 1  # E: no first response within a day
    assert row["average_rating"] == 5.0 and row["ratings"] == 1
    assert "completion_rate" in r.json()["definitions"]


async def test_figures_by_community_category_and_month_and_csv(issues: System) -> None:
    await seed(issues)
    by = (
        await issues.client.get("/issues/figures", params=[("group_by", "community"), ("group_by", "category")])
    ).json()
    rows = {(r["community"], r["category"]): r for r in by["rows"]}
    assert set(rows) == {("nanjie", "road"), ("yuntai", "flooding")}
    assert rows[("nanjie", "road")]["handled"] == 1 and rows[("nanjie", "road")]["completion_rate"] is None
    month = (utcnow() + timedelta(hours=8)).strftime("%Y-%m")
    by_month = (await issues.client.get("/issues/figures", params={"group_by": "month"})).json()["rows"]
    assert [(r["month"], r["handled"]) for r in by_month] == [(month, 6)]
    future = (await issues.client.get("/issues/figures", params={"from": "2030-01-01"})).json()["rows"]
    assert future == [] or future[0]["handled"] == 0
    r = await issues.client.get("/issues/figures", params={"from": "2026-02-01", "to": "2026-01-01"})
    assert r.status_code == 422
    r = await issues.client.get("/issues/figures", params={"group_by": "colour"})
    assert r.status_code == 422

    assert (await issues.client.get("/issues/figures.csv")).status_code == 401
    assert (await issues.client.get("/issues/figures.csv", headers=resident(issues))).status_code == 403
    r = await issues.client.get("/issues/figures.csv", headers=staff(issues), params={"group_by": "community"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert {t["community"]: t["completion_rate"] for t in table} == {"nanjie": "", "yuntai": "0.5"}

    r = await issues.client.get("/issues/issues/export.csv", headers=staff(issues))
    assert r.status_code == 200, r.text
    exported = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert len(exported) == 6 and {e["community"] for e in exported} == {"yuntai"}  # the staff member's scope
    assert {e["status"] for e in exported} == {
        "confirmed",
        "resolved",
        "closed_unresolved",
        "rejected",
        "submitted",
        "merged",
    }
    r = await issues.client.get("/issues/issues/export.csv", headers=staff(issues), params={"status": "rejected"})
    assert len(list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))) == 1


async def test_figures_single_flight_and_stale_while_revalidate(issues: System, monkeypatch: Any) -> None:
    """A miss computes once for all concurrent callers; an expired answer is served while one refresh runs."""
    calls = 0
    gate = asyncio.Event()
    original = figures.compute

    async def slow(uow: UnitOfWork, **params: Any) -> figures.Figures:
        nonlocal calls
        calls += 1
        await gate.wait()
        return await original(uow, **params)

    monkeypatch.setattr(figures, "compute", slow)
    await report(issues, resident(issues))
    params = {"community": "yuntai", "group_by": "category"}
    pending = [asyncio.create_task(issues.client.get("/issues/figures", params=params)) for _ in range(8)]
    await asyncio.sleep(0.05)
    assert calls == 1  # the others wait for the one computation
    gate.set()
    answers = [(await p).json() for p in pending]
    assert calls == 1 and all(a == answers[0] for a in answers)
    assert answers[0]["rows"][0]["handled"] == 1

    # The answer expires; a new report arrives. Callers get the stale answer at once while one refresh runs.
    for key, (_, value) in list(figures._CACHE.items()):
        figures._CACHE[key] = (time.monotonic() - 1, value)
    await report(issues, resident(issues, "res-other"), {**FLOOD, "latitude": 40.5})
    gate.clear()
    calls = 0
    stale = [await issues.client.get("/issues/figures", params=params) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert calls == 1 and all(r.json()["rows"][0]["handled"] == 1 for r in stale)
    gate.set()
    for _ in range(100):
        if not figures._INFLIGHT:
            break
        await asyncio.sleep(0.01)
    fresh = (await issues.client.get("/issues/figures", params=params)).json()
    assert calls == 1 and fresh["rows"][0]["handled"] == 2


async def test_figures_failure_reaches_every_waiter_and_is_not_cached(issues: System, monkeypatch: Any) -> None:
    original = figures.compute
    calls = 0

    async def failing(uow: UnitOfWork, **params: Any) -> figures.Figures:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise RuntimeError("database went away")

    monkeypatch.setattr(figures, "compute", failing)
    uow = issues.runtime("issues").uow()
    async with uow:
        results = await asyncio.gather(
            *(figures.cached(uow, community="nowhere") for _ in range(4)), return_exceptions=True
        )
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    monkeypatch.setattr(figures, "compute", original)
    async with uow:
        assert (await figures.cached(uow, community="nowhere")).rows[0].handled == 0
