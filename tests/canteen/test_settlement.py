"""The monthly settlement per canteen: meals served, subsidy by category and funder, withheld claims of diners
who moved away, reconciliation, the frozen claim file, and who may see it."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from uuid import UUID

from minsheng.contracts.visits import ResidentStatusChanged
from minsheng.platform.ids import utcnow
from tests.canteen.helpers import (
    TODAY,
    book,
    canteen_staff,
    community_staff,
    county,
    deliver,
    make_canteen,
    make_diner,
    make_menu,
    make_rules,
    pin,
    resident,
)
from tests.support.client import System

MONTH = f"{TODAY:%Y-%m}"
DAYS = [TODAY + timedelta(days=i) for i in range(5)]  # 10–14 March


async def a_month_of_meals(s: System) -> dict[str, dict]:  # type: ignore[type-arg]
    c = await make_canteen(s)
    await make_rules(s)
    staff = canteen_staff(s)
    zhao = await make_diner(s, c["id"], name="赵桂香")  # 90: 3 yuan
    wang = await make_diner(
        s,
        c["id"],
        name="王秀英",
        birth=date(1963, 6, 12),
        circumstances=["dibao"],
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
    )  # 67, 低保: 1 + 2 yuan
    li = await make_diner(s, c["id"], name="李德明", birth=date(1944, 11, 2))  # 86: 3 yuan
    liu = await make_diner(s, c["id"], name="刘建国", birth=date(1958, 9, 30))  # 72: 2 yuan
    menus = {d: await make_menu(s, "yunxing-street", d) for d in DAYS}
    for d in DAYS:
        pin(d, 8, 0)
        for diner in (zhao, wang):
            assert (await book(s, county(s), diner["id"], menus[d])).status_code == 201
        if d == DAYS[0]:
            assert (await book(s, county(s), li["id"], menus[d])).status_code == 201  # never comes: no-show
        if d == DAYS[2]:
            order = (await book(s, county(s), li["id"], menus[d])).json()
            await s.client.post(f"/canteen/orders/{order['id']}/cancel", headers=county(s))
        pin(d, 11, 10)
        for diner in (zhao, wang):
            r = await s.client.post(
                "/canteen/canteens/yunxing-street/check-in", headers=staff, json={"code": diner["card_code"]}
            )
            assert r.status_code == 200, r.text
        if d == DAYS[1]:
            r = await s.client.post(
                "/canteen/canteens/yunxing-street/walk-ins",
                headers=staff,
                json={"diner_id": liu["id"], "set_meal_id": menus[d]["set_meals"][0]["id"]},
            )
            assert r.status_code == 201
    return {"canteen": c, "zhao": zhao, "wang": wang, "li": li, "liu": liu}


async def test_settlement_totals_claims_and_the_claim_file(canteen: System) -> None:
    s = canteen
    people = await a_month_of_meals(s)
    # 王 moved away on the 13th (the news arrives later): her subsidy from that day is not claimed.
    await deliver(
        s,
        ResidentStatusChanged(
            resident_id=UUID(people["wang"]["resident_id"]), status="moved", effective_date=DAYS[3], changed_at=utcnow()
        ),
        source="visits",
    )

    pin(DAYS[-1], 20, 0)
    staff = canteen_staff(s)
    r = await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{MONTH}", headers=staff)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["status"] == "open" and st["meals_served"] == 11 and st["diners_served"] == 3
    assert st["orders_by_status"] == {"served": 11, "booked": 1, "cancelled": 1}
    assert st["meals_by_slot"] == {"lunch": 11} and st["meals_by_fulfilment"] == {"dine_in": 11}
    # 赵 5 × 3 yuan; 王 3 claimed days × (1 + 2 yuan), 2 days withheld; 刘 1 × 2 yuan.
    assert {(c["category"], c["meals"], c["amount_fen"]) for c in st["claims"]} == {
        ("age_80_plus", 5, 1500),
        ("age_60_69", 3, 300),
        ("dibao", 3, 600),
        ("age_70_79", 1, 200),
    }
    assert {(c["category"], c["amount_fen"]) for c in st["withheld_by_category"]} == {
        ("age_60_69", 200),
        ("dibao", 400),
    }
    assert st["claims_by_funder"] == {"county_civil_affairs": 2600}
    rec = st["reconciliation"]
    assert rec == {
        "price_total_fen": 11000,
        "elder_paid_fen": 11000 - 3200,
        "subsidy_total_fen": 3200,
        "claimed_fen": 2600,
        "withheld_fen": 600,
        "price_equals_elder_plus_subsidy": True,
        "subsidy_equals_claimed_plus_withheld": True,
        "unsettled_bookings": 1,
    }

    # The elders' own month: what they ate, what the subsidies covered, what they paid.
    mine = (await s.client.get(f"/canteen/diners/{people['zhao']['id']}/statement/{MONTH}", headers=staff)).json()
    assert (mine["meals"], mine["price_fen"], mine["subsidy_fen"], mine["paid_fen"]) == (5, 5000, 1500, 3500)
    assert mine["subsidy_by_funder"] == {"county_civil_affairs": 1500}
    li = (await s.client.get(f"/canteen/diners/{people['li']['id']}/statement/{MONTH}", headers=staff)).json()
    assert li["meals"] == 0 and li["orders_by_status"] == {"booked": 1, "cancelled": 1}

    r = await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/claim.csv", headers=staff)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 12 and sum(int(x["subsidy_fen"]) for x in rows) == 2600
    assert {x["diner_name"] for x in rows} == {"赵桂香", "王秀英", "刘建国"}
    assert all("********" in x["id_number"] for x in rows) and rows[0]["subsidy_yuan"] == "3.00"

    # Closing needs the month to be over and every booking settled (the no-show is swept first).
    r = await s.client.post(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/close", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "month_not_over"
    pin(date(2031, 4, 1), 9, 0)
    r = await s.client.post(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/close", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "unsettled_orders"
    from services.canteen.jobs import sweep_no_shows

    assert await sweep_no_shows(s.runtime("canteen")) == 1
    r = await s.client.post(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/close", headers=staff)
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["closed_by"] == "cook-yunxing-street"
    assert closed["closed_at"].endswith("Z")  # an instant in UTC
    assert closed["orders_by_status"]["no_show"] == 1 and closed["reconciliation"]["claimed_fen"] == 2600
    r = await s.client.post(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/close", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "settlement_closed"
    submitted = await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/claim.csv", headers=staff)

    # Frozen: a late event no longer changes the submitted figures or file.
    await deliver(
        s,
        ResidentStatusChanged(
            resident_id=UUID(people["wang"]["resident_id"]),
            status="deceased",
            effective_date=DAYS[0],
            changed_at=utcnow(),
        ),
        source="visits",
    )
    again = (await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{MONTH}", headers=staff)).json()
    assert again == closed
    frozen = await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{MONTH}/claim.csv", headers=staff)
    assert frozen.content == submitted.content and len(submitted.content.decode("utf-8-sig").splitlines()) == 13


async def test_who_may_see_a_settlement(canteen: System) -> None:
    s = canteen
    await make_canteen(s)
    await make_canteen(s, "dongyan-road", community="dongyan")
    url = f"/canteen/canteens/yunxing-street/settlements/{MONTH}"
    assert (await s.client.get(url, headers=community_staff(s, "yunxing"))).status_code == 200
    assert (await s.client.get(url, headers=county(s))).status_code == 200
    assert (await s.client.get(url, headers=canteen_staff(s, "dongyan-road"))).status_code == 404
    assert (await s.client.get(url, headers=community_staff(s, "dongyan"))).status_code == 404
    assert (await s.client.get(url, headers=resident(s, "wx-zhao"))).status_code == 403
    r = await s.client.get("/canteen/canteens/yunxing-street/settlements/2031-13", headers=county(s))
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    empty = (await s.client.get(url, headers=county(s))).json()
    assert empty["meals_served"] == 0 and empty["reconciliation"]["price_equals_elder_plus_subsidy"] is True
