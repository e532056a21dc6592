"""The hot paths' cheaper queries answer exactly what the straightforward ones did: the duplicate search
(category, window and bounding box in SQL, the exact distance in Python) against loading every report of the
window and filtering in Python; the balance's expiring points (``balance - recent credits``) against the
aggregate over the whole ledger (``expirable``)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.sql import table_of
from services.points import config, expiry, hazards, ledger
from services.points.models import HazardReport, HazardReportCreate, LedgerEntry
from tests.points.helpers import rider, staff
from tests.support.client import System

PLACES = [
    (40.0134, 112.7032),
    (40.0150, 112.7040),
    (40.0200, 112.7032),
    (-33.9, 179.9995),
    (-33.9, -179.9995),
    (89.9995, 10.0),
    (89.9995, -170.0),
    (0.0, 0.0),
]
ADDRESSES = [None, "", "  ", "Gangcheng theatre", " gangcheng THEATRE ", "West gate"]
COMPOUNDS = [None, "juyuan", "yunxing"]


def _jitter(rnd: random.Random, value: float, spread: float) -> float:
    return value + rnd.uniform(-spread, spread)


def _candidate(rnd: random.Random) -> dict[str, Any]:
    lat, lng = rnd.choice(PLACES)
    with_coords = rnd.random() < 0.7
    if with_coords:
        lat = max(-90.0, min(90.0, _jitter(rnd, lat, 0.004)))
        lng = _jitter(rnd, lng, 0.004)
        lng = lng - 360 if lng > 180 else lng + 360 if lng < -180 else lng
    return {
        "category": rnd.choice(["fire", "fire", "road"]),
        "description": "x",
        "latitude": lat if with_coords else None,
        "longitude": lng if with_coords and rnd.random() < 0.95 else None,
        "address": rnd.choice(ADDRESSES),
        "compound": rnd.choice(COMPOUNDS),
    }


async def _reference(system: System, data: HazardReportCreate) -> list[UUID]:
    """The first version: every report of the category in the window, filtered in Python."""
    radius = config.get().duplicate_radius_m
    since = utcnow() - timedelta(minutes=config.get().duplicate_window_minutes)
    async with system.runtime("points").uow() as uow:
        rows = (
            await uow.session.execute(
                select(HazardReport)
                .where(HazardReport.category == data.category, col(HazardReport.created_at) >= since)
                .order_by(col(HazardReport.created_at), col(HazardReport.id))
            )
        ).scalars()
        return [r.id for r in rows if hazards._same_place(r, data, radius)]


async def test_duplicate_search_in_sql_finds_what_the_python_filter_found(points: System) -> None:
    fan = await rider(points)
    rnd = random.Random(7)
    now = utcnow()
    reports = [
        {
            **_candidate(rnd),
            "id": uuid7(),
            "rider_id": UUID(fan.id),
            "urgent": False,
            "photo_urls": [],
            "status": "submitted",
            "false_report": False,
            "progress": [],
            "points_awarded": 0,
            "created_at": now - timedelta(minutes=rnd.uniform(0, 40)),
            "updated_at": now,
        }
        for _ in range(150)
    ]
    table = table_of(HazardReport)
    async with points.runtime("points").db.engine.begin() as conn:
        await conn.execute(sa.insert(table), reports)
    found = 0
    for _ in range(150):
        data = HazardReportCreate.model_validate(_candidate(rnd))
        async with points.runtime("points").uow() as uow:
            got = [r.id for r in await hazards.find_duplicate(uow, data)]
            me, together = await hazards.reporting_rider(uow, "rider-fan", data)
        assert got == await _reference(points, data), data
        assert str(me.id) == fan.id and [r.id for r in together] == got  # the same search, with the rider
        found += len(got)
    assert found > 50  # the cases above do find duplicates, not only nothing


async def test_expiring_points_match_the_whole_ledger_aggregate(points: System) -> None:
    fan = await rider(points)
    h = staff(points)
    entries = table_of(LedgerEntry)
    db = points.runtime("points").db
    rnd = random.Random(3)
    seen: set[str] = set()
    with config.override(expiry_days=120, expiry_warning_days=30):
        settings = config.get()
        for step in range(16):
            amount = rnd.choice([40, 25, 10, -5, -15])
            r = await points.client.post(
                f"/points/riders/{fan.id}/adjustments", headers=h, json={"amount": amount, "reason": f"step {step}"}
            )
            assert r.status_code in (201, 409), r.text
            shift = timedelta(days=rnd.randint(0, 90))
            async with db.engine.begin() as conn:  # spread the history over more than the expiry period
                rows = (
                    await conn.execute(
                        sa.select(entries.c.id, entries.c.created_at).where(entries.c.rider_id == UUID(fan.id))
                    )
                ).all()
                for entry_id, created in rows:
                    await conn.execute(
                        sa.update(entries).where(entries.c.id == entry_id).values(created_at=created - shift)
                    )
            b = (await points.client.get("/points/riders/me/balance", headers=fan.headers)).json()
            async with points.runtime("points").uow() as uow:
                horizon = utcnow() + timedelta(days=settings.expiry_warning_days)
                whole = await expiry.expirable(uow, UUID(fan.id), horizon - timedelta(days=settings.expiry_days))
                staff_view = await ledger.balance_view(uow, UUID(fan.id))
            assert b["expiring_points"] == min(whole, b["balance"])
            assert (b["expiring_before"] is None) == (b["expiring_points"] == 0)
            assert staff_view.expiring_points == b["expiring_points"] and staff_view.balance == b["balance"]
            seen.add("none" if not b["expiring_points"] else "all" if b["expiring_points"] == b["balance"] else "some")
    assert {"none", "some"} <= seen, seen  # the history did reach back past the cutoff, partly spent


async def test_balance_of_an_unregistered_subject_is_404(points: System) -> None:
    r = await points.client.get("/points/riders/me/balance", headers=points.auth("rider", sub="nobody", scopes=()))
    assert r.status_code == 404 and r.json()["code"] == "rider_not_registered"
