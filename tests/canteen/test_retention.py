"""PIPL retention: diners gone (moved, deceased) longer than the retention period lose their phone, ID number
and health notes; the job logs it, keeps their orders, and changes nothing on a second run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from minsheng.contracts.visits import ResidentStatusChanged
from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from services.canteen import config, jobs
from services.canteen.models import Diner, Order, PiiAccess
from tests.canteen.helpers import TODAY, TOMORROW, book, county, deliver, make_canteen, make_diner, make_menu
from tests.support.client import System

SENSITIVE = ("phone", "id_number_enc", "id_number_hash", "id_number_masked", "health_notes_enc")


async def _rows(s: System) -> dict[str, dict[str, Any]]:
    table = table_of(Diner)
    async with s.runtime("canteen").db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(table))).mappings().all()
    return {str(r["id"]): dict(r) for r in rows}


async def _purge_log(s: System) -> list[dict[str, Any]]:
    table = table_of(PiiAccess)
    async with s.runtime("canteen").db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(table).where(table.c.subject == "system:pii-retention"))).mappings()
        return [dict(r) for r in rows]


async def _gone(s: System, diner: dict[str, Any], status: str, days_ago: int) -> None:
    await deliver(
        s,
        ResidentStatusChanged(
            resident_id=UUID(diner["resident_id"]),
            status=status,
            effective_date=TODAY - timedelta(days=days_ago),
            community="yunxing",
            changed_at=utcnow(),
        ),
        source="visits",
    )


async def test_diners_gone_past_retention_lose_personal_data_and_nothing_else(canteen: System) -> None:
    await _scenario(canteen)


@pytest.mark.integration
async def test_retention_on_postgres_with_replicas_racing(pg_canteen: System) -> None:
    await _scenario(pg_canteen, replicas=3)


async def _scenario(s: System, replicas: int = 1) -> None:
    assert config.get().pii_retention_days == 365
    assert any("retention" in job.name for job in jobs.JOBS)
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    notes: dict[str, Any] = {"health_notes": "糖尿病，低盐饮食", "taste_notes": "爱吃软的"}
    old = await make_diner(s, c["id"], name="赵桂香", resident_id=str(uuid4()), **notes)
    recent = await make_diner(s, c["id"], name="钱秀英", resident_id=str(uuid4()), **notes)
    active = await make_diner(s, c["id"], name="孙志强", resident_id=str(uuid4()), **notes)
    eating = await make_diner(s, c["id"], name="李春花", resident_id=str(uuid4()), **notes)
    booked = (await book(s, county(s), old["id"], menu)).json()

    await _gone(s, old, "deceased", 400)  # past the 365 days: purged (her booking was cancelled)
    await _gone(s, recent, "moved", 30)  # within retention
    await _gone(s, eating, "moved", 400)  # past retention, but still eats at full price
    assert (await book(s, county(s), eating["id"], menu)).status_code == 201
    before = await _rows(s)
    assert all(before[d["id"]][f] is not None for d in (old, recent, active, eating) for f in SENSITIVE)

    runs = await asyncio.gather(*(jobs.pii_retention(s.runtime("canteen")) for _ in range(replicas)))
    assert sum(runs) == 1
    after = await _rows(s)
    assert all(after[old["id"]][f] is None for f in SENSITIVE)
    for d in (recent, active, eating):
        assert {f: after[d["id"]][f] for f in SENSITIVE} == {f: before[d["id"]][f] for f in SENSITIVE}
    # Non-sensitive data and history stay.
    kept = after[old["id"]]
    assert (kept["name"], kept["status"], kept["taste_notes"]) == ("赵桂香", "deceased", "爱吃软的")
    assert str(kept["subsidy_suspended_from"]) == str(TODAY - timedelta(days=400))
    orders = table_of(Order)
    async with s.runtime("canteen").db.engine.connect() as conn:
        order = (await conn.execute(sa.select(orders).where(orders.c.id == UUID(booked["id"])))).mappings().one()
    assert str(order["diner_id"]) == old["id"] and order["price_fen"] == booked["price_fen"]
    log = await _purge_log(s)
    assert [(str(r["diner_id"]), sorted(r["fields"])) for r in log] == [
        (old["id"], ["health_notes", "id_number", "phone"])
    ]

    # A second run (another replica, the next hour) changes nothing more.
    assert await jobs.pii_retention(s.runtime("canteen")) == 0
    assert await _rows(s) == after
    assert len(await _purge_log(s)) == 1

    # The API still answers for her: masked fields empty, the sensitive view answers nulls (and is logged).
    r = await s.client.get(f"/canteen/diners/{old['id']}", headers=county(s))
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["name"], d["phone"], d["id_number"], d["has_health_notes"]) == ("赵桂香", None, None, False)
    r = await s.client.get(f"/canteen/diners/{old['id']}/sensitive", headers=county(s), params={"purpose": "核对"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": old["id"], "phone": None, "id_number": None, "health_notes": None}
    r = await s.client.get(f"/canteen/diners/{old['id']}/access-log", headers=county(s))
    assert r.status_code == 200 and "system:pii-retention" in {a["subject"] for a in r.json()["items"]}
    r = await s.client.get(f"/canteen/orders/{booked['id']}", headers=county(s))
    assert r.status_code == 200 and r.json()["diner_id"] == old["id"]
    r = await s.client.get("/canteen/diners", headers=county(s), params={"status": "deceased"})
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == [old["id"]]
