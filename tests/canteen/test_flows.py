"""The canteen's cross-service flows, end to end through the other services' APIs, in the embedded mode:
a delivery order becomes a rider task in points and comes back delivered; a regular who stops coming becomes
an urgent welfare check in visits, whose outcome comes back to the alert; a death recorded in visits stops the
diner's subsidy. The same scenarios run over PostgreSQL + Kafka in ``test_flows_kafka.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, TypeVar

from minsheng.platform.bus.memory import InProcessBus
from tests.canteen.helpers import (
    AGE_RULES,
    TOMORROW,
    absence_alert,
    book,
    canteen_staff,
    county,
    make_canteen,
    make_delivery_diner,
    make_diner,
    make_menu,
    make_rules,
    outbox,
)
from tests.points.helpers import balance, rider
from tests.points.helpers import staff as points_staff
from tests.support.client import System
from tests.support.infra import eventually
from tests.visits.helpers import ZHAO_ID_NUMBER, build_place

T = TypeVar("T")


async def until(s: System, check: Callable[[], Awaitable[T | None]]) -> T:
    """Embedded: deliver everything pending, then the effect must be there. Distributed: poll for it."""
    if isinstance(s.bus, InProcessBus):
        await s.settle()
        result = await check()
        assert result, "the effect did not happen"
        return result
    return await eventually(check, within=30)  # type: ignore[no-any-return]


async def delivery_flow(s: System) -> None:
    c = await make_canteen(s)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    zhao = await make_delivery_diner(s, c["id"], community="gangcheng", subject="wx-zhao")
    wang = await make_diner(
        s, c["id"], name="王秀英", community="gangcheng", delivery_eligible=True, delivery_address="港城小区1号楼"
    )
    r = await s.client.post(
        f"/canteen/diners/{wang['id']}/family",
        headers=county(s),
        json={"subject": "wx-wang-son", "name": "王强", "relation": "son", "phone": "13935201109"},
    )
    assert r.status_code == 201, r.text
    fan = await rider(s)
    order = (await book(s, s.auth("resident", "wx-zhao", ()), zhao["id"], menu, meal=1, fulfilment="delivery")).json()
    cancelled = (await book(s, county(s), wang["id"], menu, fulfilment="delivery")).json()

    async def open_tasks() -> dict[str, dict[str, Any]] | None:
        items = (await s.client.get("/points/tasks", headers=points_staff(s))).json()["items"]
        by_order = {t["origin_id"]: t for t in items if t["origin_service"] == "canteen"}
        return by_order if len(by_order) == 2 else None

    tasks = await until(s, open_tasks)
    task = tasks[order["id"]]
    assert task["type_code"] == "meal_delivery" and task["points"] == 5 and task["status"] == "open"
    assert task["address"] == "云泰园3号楼2单元501" and task["pickup_address"] == "yunxing-street 12"

    # 王's family cancels: her rider task is withdrawn.
    r = await s.client.post(f"/canteen/orders/{cancelled['id']}/cancel", headers=county(s))
    assert r.status_code == 200

    async def withdrawn() -> bool:
        t = (await s.client.get(f"/points/tasks/{tasks[cancelled['id']]['id']}", headers=points_staff(s))).json()
        return t["status"] == "withdrawn"  # type: ignore[no-any-return]

    await until(s, withdrawn)
    # The cancellation names the diner, the meal and the family's logins (for notify), never their phones.
    [gone] = [e for e in await outbox(s, "minsheng.canteen.delivery.cancelled.v1") if e["order_id"] == cancelled["id"]]
    assert gone["diner_id"] == wang["id"] and gone["family_subjects"] == ["wx-wang-son"]
    assert gone["meal_date"] == TOMORROW.isoformat() and gone["slot"] == cancelled["slot"]
    assert "13935201109" not in str(gone)

    # A rider takes 赵's meal to her door; the canteen hears it was delivered and the rider earns the points.
    r = await s.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    assert r.status_code == 200, r.text

    async def on_its_way() -> dict[str, Any] | None:
        o = (await s.client.get(f"/canteen/orders/{order['id']}", headers=s.auth("resident", "wx-zhao", ()))).json()
        return o if o["rider_claimed_at"] else None

    assert (await until(s, on_its_way))["rider_task_id"] == task["id"]
    r = await s.client.post(
        f"/points/tasks/{task['id']}/complete",
        headers=fan.headers,
        json={"note": "handed over"},
    )
    assert r.status_code == 200, r.text

    async def delivered() -> dict[str, Any] | None:
        o = (await s.client.get(f"/canteen/orders/{order['id']}", headers=s.auth("resident", "wx-zhao", ()))).json()
        return o if o["status"] == "delivered" else None

    done = await until(s, delivered)
    assert done["rider_task_id"] == task["id"] and done["delivered_at"]
    assert await balance(s, fan) == 5

    async def announced() -> list[dict[str, Any]]:
        return [e for e in await outbox(s, "minsheng.canteen.order.delivered.v1") if e["order_id"] == order["id"]]

    [event] = await until(s, announced)
    assert event["rider_task_id"] == task["id"]
    assert event["diner_id"] == zhao["id"] and event["family_subjects"] == [] and event["slot"] == order["slot"]
    stops = (
        await s.client.get(
            "/canteen/canteens/yunxing-street/deliveries",
            headers=canteen_staff(s),
            params={"meal_date": TOMORROW.isoformat()},
        )
    ).json()["items"]
    assert {x["order_id"]: x["status"] for x in stops} == {order["id"]: "delivered"}


async def absence_flow(s: System) -> None:
    p = await build_place(s)
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], community="yuntai", compound="yuntaiyuan", resident_id=p.zhao_id)
    alert = await absence_alert(s, c["id"], zhao["id"])

    async def welfare_task() -> dict[str, Any] | None:
        items = (await p.get("/tasks", p.worker))["items"]
        return next((t for t in items if t["alert_id"] == alert["id"]), None)

    task = await until(s, welfare_task)
    assert task["kind"] == "welfare_check" and task["urgent"] is True and task["resident_id"] == p.zhao_id
    assert task["assigned_worker_id"] == p.worker_id and "3 days" in task["reason"]

    visit = await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "task_id": task["id"],
            "notes": "老人腿伤, 暂时不便出门",
        },
        201,
    )

    async def checked() -> dict[str, Any] | None:
        items = (await s.client.get("/canteen/care/alerts", headers=canteen_staff(s))).json()["items"]
        return items[0] if items and items[0]["status"] == "checked" else None

    done = await until(s, checked)
    assert done["visit_id"] == visit["id"] and done["outcome"] == "visited"


async def death_flow(s: System) -> None:
    """Recorded in visits (the resident is not linked on the canteen side): matched by the ID-number hash."""
    p = await build_place(s)
    c = await make_canteen(s)
    await make_rules(s, [rule for rule in AGE_RULES if rule["key"] == "age-80-plus"])
    zhao = await make_delivery_diner(s, c["id"], id_number=ZHAO_ID_NUMBER)
    menu = await make_menu(s, "yunxing-street", TOMORROW)
    order = (await book(s, county(s), zhao["id"], menu, fulfilment="delivery")).json()
    assert order["subsidy_fen"] == 300
    effective = (date.today() - timedelta(days=1)).isoformat()  # the visits service checks real dates
    await p.post(f"/residents/{p.zhao_id}/status", p.staff, {"status": "deceased", "effective_date": effective})

    async def suspended() -> dict[str, Any] | None:
        d = (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=county(s))).json()
        return d if d["status"] == "deceased" else None

    d = await until(s, suspended)
    assert d["resident_id"] == p.zhao_id and d["subsidy_suspended_from"] == effective
    o = (await s.client.get(f"/canteen/orders/{order['id']}", headers=county(s))).json()
    assert o["status"] == "cancelled" and o["cancel_reason"] == "resident deceased"
    # Said once, for notify: the reason, from when, how many bookings went; no ID number.
    [stopped] = [
        e for e in await outbox(s, "minsheng.canteen.diner.subsidy_suspended.v1") if e["diner_id"] == zhao["id"]
    ]
    assert stopped["reason"] == "deceased" and stopped["effective_from"] == effective
    assert stopped["cancelled_orders"] == 1 and stopped["canteen_id"] == c["id"] and stopped["family_subjects"] == []
    assert ZHAO_ID_NUMBER not in str(stopped)


async def test_delivery_order_becomes_a_rider_task_and_comes_back_delivered(system: System) -> None:
    await delivery_flow(system)


async def test_absence_alert_becomes_a_welfare_check_and_its_outcome_comes_back(system: System) -> None:
    await absence_flow(system)


async def test_a_death_recorded_in_visits_stops_the_subsidy(system: System) -> None:
    await death_flow(system)


async def test_an_unlinked_diners_absence_finds_the_resident_by_the_keyed_id_number_hash(system: System) -> None:
    """Issue 13, item 8: the alert used to carry no resident and visits ignored it."""
    s = system
    p = await build_place(s)
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], community="yuntai", compound="yuntaiyuan", id_number=ZHAO_ID_NUMBER)
    assert zhao["resident_id"] is None
    alert = await absence_alert(s, c["id"], zhao["id"])
    await s.settle()
    tasks = [t for t in (await p.get("/tasks", p.worker))["items"] if t["alert_id"] == alert["id"]]
    assert len(tasks) == 1 and tasks[0]["resident_id"] == p.zhao_id and tasks[0]["kind"] == "welfare_check"


async def test_linking_a_diner_later_resends_the_open_alert_and_schedules_the_check(system: System) -> None:
    s = system
    p = await build_place(s)
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], community="yuntai", compound="yuntaiyuan", id_number=None)
    alert = await absence_alert(s, c["id"], zhao["id"])
    await s.settle()
    assert not [t for t in (await p.get("/tasks", p.worker))["items"] if t["alert_id"] == alert["id"]]

    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=county(s), json={"resident_id": p.zhao_id})
    assert r.status_code == 200, r.text
    await s.settle()
    tasks = [t for t in (await p.get("/tasks", p.worker))["items"] if t["alert_id"] == alert["id"]]
    assert len(tasks) == 1 and tasks[0]["resident_id"] == p.zhao_id
    # Linking again (or any later re-send) schedules no second check: one per alert.
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=county(s), json={"resident_id": p.zhao_id})
    await s.settle()
    assert len([t for t in (await p.get("/tasks", p.worker))["items"] if t["alert_id"] == alert["id"]]) == 1
