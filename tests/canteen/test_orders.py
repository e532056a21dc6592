"""Ordering through the API: subsidy frozen on the order, one subsidised meal per slot, cut-offs, capacity,
idempotent creation, rule versions, caps, check-in and walk-ins, delivery events, the kitchen's view."""

from __future__ import annotations

from datetime import date, timedelta

from tests.canteen.helpers import (
    FOUR_AND_SOUP,
    SOFT_SET,
    TODAY,
    TOMORROW,
    book,
    canteen_staff,
    county,
    make_canteen,
    make_delivery_diner,
    make_diner,
    make_menu,
    make_rules,
    outbox,
    pin,
    resident,
)
from tests.support.client import System


async def test_an_order_stores_price_subsidy_share_and_funders(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    wang = await make_diner(
        s, c["id"], name="王秀英", birth=date(1950, 6, 12), circumstances=["dibao", "disabled"], subject="wx-wang"
    )
    r = await book(s, resident(s, "wx-wang"), wang["id"], menu)
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["price_fen"], order["subsidy_fen"], order["elder_pays_fen"]) == (1000, 600, 400)
    assert [(ln["rule_key"], ln["category"], ln["amount_fen"]) for ln in order["subsidy_lines"]] == [
        ("age-80-plus", "age_80_plus", 300),
        ("dibao", "dibao", 200),
        ("disabled", "disabled", 100),
    ]
    assert order["funding"] == [
        {"funder": "county_civil_affairs", "amount_fen": 500},
        {"funder": "county_disabled_persons_federation", "amount_fen": 100},
        {"funder": "diner", "amount_fen": 400},
    ]
    assert order["channel"] == "app" and order["status"] == "booked" and order["payer"] == "diner"
    # The booking answers with exactly the order as it is read back (built from the row values, not reloaded).
    assert (await s.client.get(f"/canteen/orders/{order['id']}", headers=resident(s, "wx-wang"))).json() == order

    # The quote for the same meal is what the order says.
    r = await s.client.post(
        "/canteen/subsidy/quote",
        headers=resident(s, "wx-wang"),
        json={"diner_id": wang["id"], "menu_id": menu["id"], "set_meal_id": menu["set_meals"][1]["id"]},
    )
    assert r.status_code == 200 and r.json()["subsidy_fen"] == 600 and r.json()["elder_pays_fen"] == 400


async def test_idempotent_creation_and_one_subsidised_meal_per_slot(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    zhao = await make_diner(s, c["id"])
    await s.client.post(
        f"/canteen/diners/{zhao['id']}/family",
        headers=county(s),
        json={"subject": "wx-daughter", "name": "赵丽", "relation": "daughter"},
    )
    daughter = resident(s, "wx-daughter")
    key = {"Idempotency-Key": "order-zhao-0311-lunch"}
    first = await book(s, {**daughter, **key}, zhao["id"], menu)
    assert first.status_code == 201 and first.json()["payer"] == "family"
    again = await book(s, {**daughter, **key}, zhao["id"], menu)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    other = await book(s, {**daughter, **key}, zhao["id"], menu, meal=1)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"

    dup = await book(s, daughter, zhao["id"], menu, meal=1)
    assert dup.status_code == 409 and dup.json()["code"] == "already_booked"
    extra = await book(s, daughter, zhao["id"], menu, meal=1, extra=True)
    assert extra.status_code == 201 and extra.json()["subsidy_fen"] == 0 and extra.json()["elder_pays_fen"] == 1000
    menu_now = (await s.client.get(f"/canteen/menus/{menu['id']}")).json()
    assert menu_now["booked"] == 2  # the failed attempt did not keep a seat

    r = await s.client.post(
        f"/canteen/orders/{first.json()['id']}/cancel", headers=daughter, json={"reason": "going to hospital"}
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["cancel_reason"] == "going to hospital"
    assert all(ln["status"] == "cancelled" for ln in r.json()["subsidy_lines"])
    cancelled = r.json()
    resent = await s.client.post(f"/canteen/orders/{first.json()['id']}/cancel", headers=daughter)
    assert (resent.status_code, resent.json()) == (200, cancelled)  # a resend after a lost answer: as it is
    assert (await s.client.get(f"/canteen/menus/{menu['id']}")).json()["booked"] == 1  # the seat freed once
    again = await book(s, daughter, zhao["id"], menu, meal=1)
    assert again.status_code == 201 and again.json()["subsidy_fen"] == 300

    # A family member who may not order, cannot.
    await s.client.post(
        f"/canteen/diners/{zhao['id']}/family",
        headers=county(s),
        json={"subject": "wx-grandson", "name": "赵小", "relation": "grandson", "can_order": False},
    )
    r = await book(s, resident(s, "wx-grandson"), zhao["id"], menu, extra=True)
    assert r.status_code == 403 and r.json()["code"] == "family_cannot_order"


async def test_cut_off_capacity_and_cancellation(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW, capacity=2)
    elders = [await make_diner(s, c["id"], name=f"老人{i}", subject=f"wx-{i}") for i in range(3)]
    assert (await book(s, resident(s, "wx-0"), elders[0]["id"], menu)).status_code == 201
    assert (await book(s, resident(s, "wx-1"), elders[1]["id"], menu)).status_code == 201
    full = await book(s, resident(s, "wx-2"), elders[2]["id"], menu)
    assert full.status_code == 409 and full.json()["code"] == "slot_full"
    assert full.json()["detail"] == f"{TOMORROW} {menu['slot']} 的 2 份餐已全部订满。" and full.json()["capacity"] == 2
    r = await s.client.put(f"/canteen/menus/{menu['id']}/capacity", headers=canteen_staff(s), json={"capacity": 1})
    assert r.status_code == 409 and r.json()["code"] == "capacity_below_booked"

    # Lunch is at 11:00 with a 120-minute cut-off: at 09:00 the app stops taking bookings and cancellations.
    pin(TOMORROW, 9, 0)
    orders = (await s.client.get("/canteen/orders", headers=resident(s, "wx-0"))).json()["items"]
    r = await s.client.post(f"/canteen/orders/{orders[0]['id']}/cancel", headers=resident(s, "wx-0"))
    assert r.status_code == 409 and r.json()["code"] == "cancellation_closed"
    r = await s.client.post(
        f"/canteen/orders/{orders[0]['id']}/cancel", headers=canteen_staff(s), json={"reason": "family called"}
    )
    assert r.status_code == 200
    late = await book(s, resident(s, "wx-2"), elders[2]["id"], menu)
    assert late.status_code == 409 and late.json()["code"] == "booking_closed"
    # Staff may still take a booking by phone until serving ends, and the cancelled seat is free again.
    r = await book(s, canteen_staff(s), elders[2]["id"], menu)
    assert r.status_code == 201 and r.json()["channel"] == "staff"
    pin(TOMORROW, 12, 31)
    r = await book(s, canteen_staff(s), elders[0]["id"], menu)
    assert r.status_code == 409 and r.json()["code"] == "booking_closed"


async def test_a_rule_change_never_rewrites_orders(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    menus = [await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=i)) for i in range(2)]
    zhao = await make_diner(s, c["id"])
    li = await make_diner(s, c["id"], name="李德明", birth=date(1944, 11, 2))
    before = (await book(s, county(s), zhao["id"], menus[0])).json()
    assert before["subsidy_fen"] == 300

    r = await s.client.post(
        "/canteen/subsidy-rules/age-80-plus/versions",
        headers=county(s),
        json={
            "name": "80+ raised",
            "category": "age_80_plus",
            "funder": "county_civil_affairs",
            "amount_fen": 500,
            "min_age": 80,
            "effective_from": TOMORROW.isoformat(),
        },
    )
    assert r.status_code == 201 and r.json()["version"] == 2
    history = (await s.client.get("/canteen/subsidy-rules/age-80-plus", headers=county(s))).json()
    assert [(v["version"], v["effective_from"], v["effective_to"]) for v in history] == [
        (1, TODAY.isoformat(), TODAY.isoformat()),
        (2, TOMORROW.isoformat(), None),
    ]

    unchanged = (await s.client.get(f"/canteen/orders/{before['id']}", headers=county(s))).json()
    assert unchanged["subsidy_fen"] == 300 and unchanged["subsidy_lines"][0]["rule_version"] == 1
    after = (await book(s, county(s), li["id"], menus[0])).json()
    assert after["subsidy_fen"] == 500 and after["subsidy_lines"][0]["rule_version"] == 2
    in_force = (
        await s.client.get(
            "/canteen/subsidy-rules", headers=county(s), params={"on": TOMORROW.isoformat(), "key": "age-80-plus"}
        )
    ).json()["items"]
    assert [v["version"] for v in in_force] == [2]

    # Rules are never back-dated, versions only move forward, and only county staff change them.
    body = {
        "name": "x",
        "category": "age_80_plus",
        "funder": "county_civil_affairs",
        "amount_fen": 1,
        "effective_from": (TODAY - timedelta(days=1)).isoformat(),
    }
    r = await s.client.post("/canteen/subsidy-rules/age-80-plus/versions", headers=county(s), json=body)
    assert r.status_code == 422 and r.json()["code"] == "effective_from_in_past"
    r = await s.client.post(
        "/canteen/subsidy-rules/age-80-plus/versions",
        headers=county(s),
        json={**body, "effective_from": TOMORROW.isoformat()},
    )
    assert r.status_code == 409 and r.json()["code"] == "version_not_after_latest"
    r = await s.client.post(
        "/canteen/subsidy-rules/age-80-plus/versions",
        headers=canteen_staff(s),
        json={**body, "effective_from": (TODAY + timedelta(9)).isoformat()},
    )
    assert r.status_code == 403
    r = await s.client.post(
        "/canteen/subsidy-rules",
        headers=county(s),
        json={**body, "key": "age-80-plus", "effective_from": TODAY.isoformat()},
    )
    assert r.status_code == 409 and r.json()["code"] == "subsidy_rule_exists"
    r = await s.client.post(
        "/canteen/subsidy-rules/age-80-plus/retire", headers=county(s), json={"effective_to": TOMORROW.isoformat()}
    )
    assert r.status_code == 200 and r.json()["effective_to"] == TOMORROW.isoformat()
    later = (await book(s, county(s), li["id"], menus[1])).json()
    assert later["subsidy_fen"] == 0 and later["elder_pays_fen"] == 1000


async def test_daily_and_monthly_caps_across_meals(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    breakfast = await make_menu(
        s, "yunxing-street", TOMORROW, "breakfast", meals=[{**SOFT_SET, "name": "粥 congee", "price_fen": 400}]
    )
    lunch = await make_menu(s, "yunxing-street", TOMORROW, "lunch")
    dinner = await make_menu(s, "yunxing-street", TOMORROW, "dinner")
    zhao = await make_diner(s, c["id"])
    # The 80+ subsidy is 3 yuan a meal, at most 6 yuan a day.
    got = [(await book(s, county(s), zhao["id"], m)).json()["subsidy_fen"] for m in (breakfast, lunch, dinner)]
    assert got == [300, 300, 0]
    lunch_order = (
        await s.client.get(
            "/canteen/orders", headers=county(s), params={"diner_id": zhao["id"], "meal_date": TOMORROW.isoformat()}
        )
    ).json()
    assert len(lunch_order["items"]) == 3

    # 低保: 2 yuan a meal, at most 10 yuan a month (and the month starts again on the 1st).
    wang = await make_diner(s, c["id"], name="王秀英", birth=date(1963, 6, 12), circumstances=["dibao"])
    days = [TOMORROW + timedelta(days=i) for i in range(6)]
    menus = [lunch] + [await make_menu(s, "yunxing-street", d) for d in days[1:]]
    got = [(await book(s, county(s), wang["id"], m)).json()["subsidy_fen"] for m in menus]
    assert got == [300, 300, 300, 300, 300, 100]  # 1 yuan for age 60–69 + 2 yuan 低保 until the cap
    april = await make_menu(s, "yunxing-street", date(2031, 4, 1))
    assert (await book(s, county(s), wang["id"], april)).json()["subsidy_fen"] == 300


async def test_check_in_walk_ins_and_the_kitchen(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    staff = canteen_staff(s)
    menu = await make_menu(s, "yunxing-street", TODAY)
    zhao = await make_diner(s, c["id"], dietary=["soft_food", "low_salt"], subject="wx-zhao")
    li = await make_diner(s, c["id"], name="李德明", birth=date(1944, 11, 2), dietary=["diabetic"])
    liu = await make_diner(s, c["id"], name="刘建国", birth=date(1958, 9, 30))
    zhao_order = (await book(s, resident(s, "wx-zhao"), zhao["id"], menu, meal=1)).json()
    li_order = (await book(s, staff, li["id"], menu)).json()
    tomorrow = await make_menu(s, "yunxing-street", TOMORROW)
    future = (await book(s, staff, li["id"], tomorrow)).json()

    pin(TODAY, 11, 5)
    r = await s.client.post(f"/canteen/orders/{zhao_order['id']}/check-in", headers=resident(s, "wx-zhao"))
    assert r.status_code == 403
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/check-in", headers=staff, json={"code": zhao_order["pickup_code"].lower()}
    )
    assert r.status_code == 200 and r.json()["status"] == "served" and r.json()["checked_in_at"]
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/check-in", headers=staff, json={"code": zhao_order["pickup_code"]}
    )
    assert r.status_code == 404 and r.json()["code"] == "code_not_recognised"
    r = await s.client.post("/canteen/canteens/yunxing-street/check-in", headers=staff, json={"code": li["card_code"]})
    assert r.status_code == 200 and r.json()["id"] == li_order["id"]
    r = await s.client.post(f"/canteen/orders/{future['id']}/check-in", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "not_today"
    # 刘 did not book: his card finds no booking, so the counter records a walk-in.
    r = await s.client.post("/canteen/canteens/yunxing-street/check-in", headers=staff, json={"code": liu["card_code"]})
    assert r.status_code == 404 and r.json()["code"] == "no_booking" and r.json()["diner_id"] == liu["id"]
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/walk-ins",
        headers=staff,
        json={"card_code": liu["card_code"], "set_meal_id": menu["set_meals"][0]["id"]},
    )
    assert r.status_code == 201, r.text
    walk_in = r.json()
    assert walk_in["status"] == "served" and walk_in["channel"] == "walk_in" and walk_in["subsidy_fen"] == 200
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/walk-ins",
        headers=staff,
        json={"diner_id": liu["id"], "card_code": liu["card_code"], "set_meal_id": menu["set_meals"][0]["id"]},
    )
    assert r.status_code == 422

    sheet = (await s.client.get("/canteen/canteens/yunxing-street/kitchen", headers=staff)).json()
    lunch = next(x for x in sheet["slots"] if x["slot"] == "lunch")
    assert lunch["to_prepare"] == 3 and lunch["by_status"] == {"served": 3}
    assert lunch["dietary"] == {"soft_food": 1, "low_salt": 1, "diabetic": 1}
    counts = {m["name"]: (m["count"], m["dietary"]) for m in lunch["set_meals"]}
    assert counts == {
        FOUR_AND_SOUP["name"]: (2, {"diabetic": 1}),
        SOFT_SET["name"]: (1, {"soft_food": 1, "low_salt": 1}),
    }
    other = canteen_staff(s, "dongyan-road")
    assert (await s.client.get("/canteen/canteens/yunxing-street/kitchen", headers=other)).status_code == 404


async def test_delivery_orders_call_a_rider_and_cancelling_withdraws_it(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    zhao = await make_delivery_diner(s, c["id"], dietary=["soft_food"])
    wang = await make_diner(s, c["id"], name="王秀英")
    r = await book(s, county(s), wang["id"], menu, fulfilment="delivery", delivery_address="somewhere")
    assert r.status_code == 409 and r.json()["code"] == "delivery_not_eligible"
    r = await book(s, county(s), zhao["id"], menu, meal=1, fulfilment="delivery")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["delivery_address"] == "云泰园3号楼2单元501" and order["deliver_by"] == "2031-03-11T04:00:00Z"
    assert (await s.client.get(f"/canteen/orders/{order['id']}", headers=county(s))).json() == order

    [requested] = await outbox(s, "minsheng.canteen.delivery.requested.v1")
    assert requested["order_id"] == order["id"] and requested["slot"] == "lunch"
    assert requested["delivery_address"] == "云泰园3号楼2单元501" and requested["pickup_address"] == "yunxing-street 12"
    assert requested["compound"] == "yuntaiyuan" and requested["points"] == 5
    assert "phone" not in str(requested) and "1393520" not in str(requested)

    stops = (
        await s.client.get(
            "/canteen/canteens/yunxing-street/deliveries",
            headers=canteen_staff(s),
            params={"meal_date": TOMORROW.isoformat()},
        )
    ).json()["items"]
    assert [(x["order_id"], x["phone"], x["dietary"]) for x in stops] == [(order["id"], "139****1101", ["soft_food"])]
    assert stops[0]["deliver_by"] == "2031-03-11T04:00:00Z"  # an instant, as on the order
    r = await s.client.post(f"/canteen/orders/{order['id']}/check-in", headers=canteen_staff(s))
    assert r.status_code == 409

    r = await s.client.post(f"/canteen/orders/{order['id']}/cancel", headers=county(s), json={"reason": "in hospital"})
    assert r.status_code == 200
    [cancelled] = await outbox(s, "minsheng.canteen.delivery.cancelled.v1")
    assert cancelled["order_id"] == order["id"] and cancelled["reason"] == "in hospital"


async def test_who_sees_which_orders(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_canteen(s, "dongyan-road", community="dongyan")
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    zhao = await make_diner(s, c["id"], subject="wx-zhao")
    li = await make_diner(s, c["id"], name="李德明", subject="wx-li")
    order = (await book(s, resident(s, "wx-zhao"), zhao["id"], menu)).json()
    (await book(s, resident(s, "wx-li"), li["id"], menu)).json()

    mine = (await s.client.get("/canteen/orders", headers=resident(s, "wx-zhao"))).json()["items"]
    assert [o["id"] for o in mine] == [order["id"]]
    assert (await s.client.get(f"/canteen/orders/{order['id']}", headers=resident(s, "wx-li"))).status_code == 404
    r = await book(s, resident(s, "wx-li"), zhao["id"], menu, extra=True)
    assert r.status_code == 404 and r.json()["code"] == "diner_not_found"
    assert (
        await s.client.get(f"/canteen/orders/{order['id']}", headers=canteen_staff(s, "dongyan-road"))
    ).status_code == 404
    r = await s.client.get("/canteen/orders", headers=canteen_staff(s, "dongyan-road"), params={"canteen_id": c["id"]})
    assert r.status_code == 404
    page = (
        await s.client.get("/canteen/orders", headers=canteen_staff(s), params={"canteen_id": c["id"], "limit": 1})
    ).json()
    nxt = (
        await s.client.get(
            "/canteen/orders", headers=canteen_staff(s), params={"canteen_id": c["id"], "cursor": page["next_cursor"]}
        )
    ).json()
    assert len(page["items"]) == 1 and len(nxt["items"]) == 1 and nxt["next_cursor"] is None
    r = await s.client.get("/canteen/orders", headers=canteen_staff(s), params={"cursor": "garbage"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    r = await s.client.post(
        "/canteen/orders",
        headers=county(s),
        json={"diner_id": zhao["id"], "menu_id": menu["id"], "set_meal_id": zhao["id"]},
    )
    assert r.status_code == 404 and r.json()["code"] == "set_meal_not_found"
    r = await s.client.post("/canteen/orders", headers=county(s), json={"diner_id": "nope"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


async def test_rider_events_for_an_order_are_applied_once(canteen: System) -> None:
    from datetime import UTC, datetime
    from uuid import UUID, uuid4

    from minsheng.contracts.base import Origin
    from minsheng.contracts.points import TaskClaimed, TaskCompleted
    from tests.canteen.helpers import deliver

    s = canteen
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    zhao = await make_diner(s, c["id"], delivery_eligible=True, delivery_address="云泰园3号楼")
    order = (await book(s, county(s), zhao["id"], menu, fulfilment="delivery")).json()
    dine_in = (await book(s, county(s), zhao["id"], menu, extra=True)).json()
    origin = Origin(service="canteen", kind="order", id=order["id"])
    task_id, rider_id = uuid4(), uuid4()
    claimed_at = datetime(2031, 3, 11, 3, 20, tzinfo=UTC)
    await deliver(
        s,
        TaskClaimed(
            task_id=task_id, task_type="meal_delivery", rider_id=rider_id, origin=origin, claimed_at=claimed_at
        ),
        source="points",
    )
    o = (await s.client.get(f"/canteen/orders/{order['id']}", headers=county(s))).json()
    assert o["status"] == "booked" and o["rider_claimed_at"] == "2031-03-11T03:20:00Z"
    done = TaskCompleted(
        task_id=task_id,
        task_type="meal_delivery",
        rider_id=rider_id,
        origin=origin,
        completed_at=datetime(2031, 3, 11, 3, 50, tzinfo=UTC),
        points=5,
    )
    await deliver(s, done, source="points", times=3)  # redelivered
    # Not ours: other services' origins, orders we do not have, a dine-in order.
    for other in (
        Origin(service="issues", kind="order", id=order["id"]),
        Origin(service="canteen", kind="order", id=str(uuid4())),
        Origin(service="canteen", kind="order", id="not-a-uuid"),
        Origin(service="canteen", kind="order", id=dine_in["id"]),
        None,
    ):
        await deliver(s, done.model_copy(update={"task_id": uuid4(), "origin": other}), source="points")
    o = (await s.client.get(f"/canteen/orders/{order['id']}", headers=county(s))).json()
    assert o["status"] == "delivered" and o["delivered_at"] == "2031-03-11T03:50:00Z"
    assert UUID(o["rider_task_id"]) == task_id
    assert (await s.client.get(f"/canteen/orders/{dine_in['id']}", headers=county(s))).json()["status"] == "booked"
    assert [e["order_id"] for e in await outbox(s, "minsheng.canteen.order.delivered.v1")] == [order["id"]]
    assert s.runtime("canteen").consumer.stats.dead_lettered == 0
    # A delivery cannot be cancelled once delivered.
    r = await s.client.post(f"/canteen/orders/{order['id']}/cancel", headers=county(s))
    assert r.status_code == 409 and r.json()["code"] == "order_not_cancellable"


async def test_staff_raise_capacity_and_confirm_a_delivery_by_hand(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW, capacity=1)
    zhao = await make_diner(s, c["id"], delivery_eligible=True, delivery_address="云泰园3号楼")
    li = await make_diner(s, c["id"], name="李德明")
    order = (await book(s, county(s), zhao["id"], menu, fulfilment="delivery")).json()
    assert (await book(s, county(s), li["id"], menu)).json()["code"] == "slot_full"
    r = await s.client.put(f"/canteen/menus/{menu['id']}/capacity", headers=canteen_staff(s), json={"capacity": 2})
    assert r.status_code == 200 and r.json()["remaining"] == 1
    dine_in = (await book(s, county(s), li["id"], menu)).json()
    assert dine_in["status"] == "booked"

    # The rider's phone died: the canteen confirms the delivery itself (once).
    r = await s.client.post(f"/canteen/orders/{order['id']}/delivered", headers=resident(s, "wx-zhao"))
    assert r.status_code == 403
    r = await s.client.post(f"/canteen/orders/{order['id']}/delivered", headers=canteen_staff(s))
    assert r.status_code == 200 and r.json()["status"] == "delivered" and r.json()["rider_task_id"] is None
    r = await s.client.post(f"/canteen/orders/{order['id']}/delivered", headers=canteen_staff(s))
    assert r.status_code == 409 and r.json()["code"] == "order_not_deliverable"
    assert r.json()["current_status"] == "delivered"  # like every status conflict
    r = await s.client.post(f"/canteen/orders/{dine_in['id']}/delivered", headers=canteen_staff(s))
    assert r.status_code == 409 and r.json()["code"] == "order_not_deliverable"
    assert r.json()["current_status"] == "booked"  # booked, but a dine-in meal is never delivered
    [event] = await outbox(s, "minsheng.canteen.order.delivered.v1")
    assert event["order_id"] == order["id"] and event.get("rider_task_id") is None
    listed = (
        await s.client.get(
            "/canteen/orders",
            headers=canteen_staff(s),
            params={"canteen_id": c["id"], "fulfilment": "delivery", "status": "delivered"},
        )
    ).json()["items"]
    assert [o["id"] for o in listed] == [order["id"]]


async def test_a_week_is_booked_in_one_go_or_not_at_all(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    week = [await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=i)) for i in range(3)]
    full = await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=3), capacity=0)
    zhao = await make_diner(s, c["id"], subject="wx-zhao", delivery_eligible=True, delivery_address="云泰园3号楼")
    elder = {**resident(s, "wx-zhao"), "Idempotency-Key": "week-12"}

    def item(menu: dict, meal: int = 0, fulfilment: str = "dine_in") -> dict:  # type: ignore[type-arg]
        return {"menu_id": menu["id"], "set_meal_id": menu["set_meals"][meal]["id"], "fulfilment": fulfilment}

    r = await s.client.post(
        "/canteen/orders/batch",
        headers=resident(s, "wx-zhao"),
        json={"diner_id": zhao["id"], "items": [item(m) for m in week] + [item(full)]},
    )
    assert r.status_code == 409 and r.json()["code"] == "slot_full" and r.json()["item"] == 3
    assert r.json()["detail"].startswith("items[3]：") and r.json()["detail"].endswith("份餐已全部订满。")
    assert [(await s.client.get(f"/canteen/menus/{m['id']}")).json()["booked"] for m in week] == [0, 0, 0]

    body = {"diner_id": zhao["id"], "items": [item(week[2], 1, "delivery"), item(week[0]), item(week[1])]}
    r = await s.client.post("/canteen/orders/batch", headers=elder, json=body)
    assert r.status_code == 201, r.text
    placed = r.json()
    assert [(o["meal_date"], o["fulfilment"], o["subsidy_fen"]) for o in placed] == [
        (week[2]["meal_date"], "delivery", 300),
        (week[0]["meal_date"], "dine_in", 300),
        (week[1]["meal_date"], "dine_in", 300),
    ]
    again = await s.client.post("/canteen/orders/batch", headers=elder, json=body)
    assert again.status_code == 201 and [o["id"] for o in again.json()] == [o["id"] for o in placed]
    assert len(await outbox(s, "minsheng.canteen.delivery.requested.v1")) == 1
    r = await s.client.post(
        "/canteen/orders/batch", headers=resident(s, "wx-zhao"), json={"diner_id": zhao["id"], "items": [item(week[0])]}
    )
    assert r.status_code == 409 and r.json()["code"] == "already_booked" and r.json()["item"] == 0
    r = await s.client.post(
        "/canteen/orders/batch", headers=resident(s, "wx-zhao"), json={"diner_id": zhao["id"], "items": []}
    )
    assert r.status_code == 422
