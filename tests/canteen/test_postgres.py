"""The canteen on real PostgreSQL: capacity and one-meal-per-slot under concurrent booking, double taps with
one Idempotency-Key, concurrent absence scans, and the SQL of settlement, caps and care on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from minsheng.platform.sql import table_of
from services.canteen import jobs
from services.canteen.models import Order
from tests.canteen import test_canteens_menus, test_care, test_orders, test_settlement
from tests.canteen.helpers import (
    TOMORROW,
    book,
    county,
    make_canteen,
    make_diner,
    make_menu,
    make_rules,
    outbox,
    resident,
    stopped_coming,
)
from tests.support.client import System

pytestmark = pytest.mark.integration
ORDERS = table_of(Order)


async def test_capacity_and_one_meal_per_slot_hold_under_concurrent_booking(pg_system: System) -> None:
    """The whole system on PostgreSQL (the other services idle), so the canteen shares the server as deployed."""
    s = pg_system
    c = await make_canteen(s)
    await make_rules(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW, capacity=12)
    diners = [await make_diner(s, c["id"], name=f"老人{i:02d}", subject=f"wx-{i}") for i in range(40)]

    # 40 elders try for 12 seats at once.
    results = await asyncio.gather(*(book(s, resident(s, f"wx-{i}"), d["id"], menu) for i, d in enumerate(diners)))
    codes = Counter((r.status_code, r.json().get("code")) for r in results)
    assert codes == {(201, None): 12, (409, "slot_full"): 28}
    assert (await s.client.get(f"/canteen/menus/{menu['id']}")).json()["booked"] == 12
    async with s.runtime("canteen").db.engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(ORDERS))) == 12

    # One elder's phone sends ten bookings for the same slot at once: one meal, nine clear refusals.
    lunch = await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=1), capacity=50)
    zhao = diners[0]
    results = await asyncio.gather(*(book(s, resident(s, "wx-0"), zhao["id"], lunch, meal=i % 2) for i in range(10)))
    assert Counter((r.status_code, r.json().get("code")) for r in results) == {
        (201, None): 1,
        (409, "already_booked"): 9,
    }
    assert (await s.client.get(f"/canteen/menus/{lunch['id']}")).json()["booked"] == 1

    # A double tap with one Idempotency-Key: both get the same order.
    dinner = await make_menu(s, "yunxing-street", TOMORROW, "dinner")
    headers = {**resident(s, "wx-1"), "Idempotency-Key": "tap-tap"}
    results = await asyncio.gather(*(book(s, headers, diners[1]["id"], dinner) for _ in range(5)))
    assert {r.status_code for r in results} == {201} and len({r.json()["id"] for r in results}) == 1
    assert (await s.client.get(f"/canteen/menus/{dinner['id']}")).json()["booked"] == 1

    # Cancellations racing with bookings keep the count exact.
    booked = [r.json() for r in results[:1]]
    cancels = [s.client.post(f"/canteen/orders/{o['id']}/cancel", headers=county(s)) for o in booked]
    more = [book(s, resident(s, f"wx-{i}"), diners[i]["id"], dinner) for i in range(2, 30)]
    await asyncio.gather(*cancels, *more)
    async with s.runtime("canteen").db.engine.connect() as conn:
        live = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(ORDERS)
            .where(ORDERS.c.menu_id == dinner["id"], ORDERS.c.status != "cancelled")
        )
    assert (await s.client.get(f"/canteen/menus/{dinner['id']}")).json()["booked"] == live == 28


async def test_concurrent_week_bookings_are_all_or_nothing(pg_canteen: System) -> None:
    s = pg_canteen
    c = await make_canteen(s)
    a = await make_menu(s, "yunxing-street", TOMORROW, capacity=6)
    b = await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=1), capacity=6)
    diners = [await make_diner(s, c["id"], name=f"老人{i:02d}", subject=f"wx-{i}") for i in range(14)]

    def items(first: dict, second: dict) -> list[dict]:  # type: ignore[type-arg]
        return [{"menu_id": m["id"], "set_meal_id": m["set_meals"][0]["id"]} for m in (first, second)]

    # Half list the days one way round, half the other: seats are still taken in one order (no deadlock).
    results = await asyncio.gather(
        *(
            s.client.post(
                "/canteen/orders/batch",
                headers=resident(s, f"wx-{i}"),
                json={"diner_id": d["id"], "items": items(a, b) if i % 2 else items(b, a)},
            )
            for i, d in enumerate(diners)
        )
    )
    codes = Counter((r.status_code, r.json()["code"] if r.status_code != 201 else None) for r in results)
    assert codes == {(201, None): 6, (409, "slot_full"): 8}
    for menu in (a, b):
        assert (await s.client.get(f"/canteen/menus/{menu['id']}")).json()["booked"] == 6
    async with s.runtime("canteen").db.engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(ORDERS))) == 12


async def test_concurrent_absence_scans_raise_one_alert(pg_canteen: System) -> None:
    s = pg_canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"])
    await stopped_coming(s, c["id"], zhao["id"])
    results = await asyncio.gather(*(jobs.scan_absences(s.runtime("canteen")) for _ in range(4)))
    assert sum(r.raised for r in results) == 1
    assert len(await outbox(s, "minsheng.canteen.diner.absence_alert.v1")) == 1


async def test_settlement_on_postgres(pg_canteen: System) -> None:
    await test_settlement.test_settlement_totals_claims_and_the_claim_file(pg_canteen)


async def test_caps_on_postgres(pg_canteen: System) -> None:
    await test_orders.test_daily_and_monthly_caps_across_meals(pg_canteen)


async def test_rule_versions_on_postgres(pg_canteen: System) -> None:
    await test_orders.test_a_rule_change_never_rewrites_orders(pg_canteen)


async def test_care_and_life_events_on_postgres(pg_canteen: System) -> None:
    await test_care.test_moved_or_deceased_residents_stop_being_subsidised(pg_canteen)


async def test_canteen_list_on_postgres(pg_canteen: System) -> None:
    await test_canteens_menus.test_canteens_are_public_and_managed_in_scope(pg_canteen)


async def test_menu_list_on_postgres(pg_canteen: System) -> None:
    await test_canteens_menus.test_the_menu_list_is_exactly_what_its_response_model_serializes(pg_canteen)


async def test_order_response_on_postgres(pg_canteen: System) -> None:
    await test_orders.test_an_order_stores_price_subsidy_share_and_funders(pg_canteen)
