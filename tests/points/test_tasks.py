"""The governance task list: types, posting, claiming, completing with proof, verification, caps, and the
canteen's meal deliveries arriving and leaving by event."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from minsheng.contracts.canteen import DeliveryCancelled, DeliveryRequested
from services.points import config
from tests.points.helpers import balance, deliver, published, rider, staff, upload_photo
from tests.support.client import System

PATROL = {"code": "hazard_patrol", "name": "安全隐患巡查", "points": 10, "daily_cap": 2, "verification": "staff"}


async def _type(system: System, **changes: Any) -> dict[str, Any]:
    r = await system.client.post("/points/task-types", headers=staff(system), json={**PATROL, **changes})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _task(system: System, type_code: str = "hazard_patrol", **changes: Any) -> dict[str, Any]:
    body = {
        "type_code": type_code,
        "title": "巡查港城剧院周边",
        "community": "gangcheng",
        "address": "港城剧院",
        **changes,
    }
    r = await system.client.post("/points/tasks", headers=staff(system), json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _delivery(order_id: Any = None, points: int = 5) -> DeliveryRequested:
    return DeliveryRequested(
        order_id=order_id or uuid4(),
        canteen_id=uuid4(),
        canteen_name="云兴街幸福食堂",
        meal_date=date.today(),
        slot="lunch",
        deliver_by=datetime.now(UTC) + timedelta(hours=2),
        pickup_address="云兴街 12 号",
        delivery_address="云泰园 3 号楼 2 单元 501",
        community="gangcheng",
        compound="yuntaiyuan",
        points=points,
    )


async def test_task_lifecycle_with_staff_verification(points: System) -> None:
    await _type(points)
    types = (await points.client.get("/points/task-types", headers=points.auth("rider", "anyone", ()))).json()
    assert [t["code"] for t in types] == ["hazard_patrol"]
    fan = await rider(points)
    wu = await rider(points, "rider-wu", name="吴强", phone="13700000000")
    task = await _task(points)
    assert task["points"] == 10 and task["status"] == "open"

    open_list = (await points.client.get("/points/tasks", headers=fan.headers)).json()["items"]
    assert [t["id"] for t in open_list] == [task["id"]] and open_list[0]["address"] is None
    claimed = await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    assert claimed.status_code == 200 and claimed.json()["address"] == "港城剧院"
    retry = await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    assert retry.status_code == 200
    late = await points.client.post(f"/points/tasks/{task['id']}/claim", headers=wu.headers)
    assert late.status_code == 409 and late.json()["code"] == "task_not_open"
    assert late.json()["current_status"] == "claimed"
    assert (await points.client.get(f"/points/tasks/{task['id']}", headers=wu.headers)).status_code == 404

    no_proof = await points.client.post(f"/points/tasks/{task['id']}/complete", headers=fan.headers, json={})
    assert no_proof.status_code == 422 and no_proof.json()["code"] == "proof_required"
    done = await points.client.post(
        f"/points/tasks/{task['id']}/complete",
        headers=fan.headers,
        json={"photo_ids": [await upload_photo(points, fan.headers)], "note": "all clear"},
    )
    assert done.status_code == 200 and done.json()["status"] == "submitted"
    assert await balance(points, fan) == 0

    verified = await points.client.post(f"/points/tasks/{task['id']}/verify", headers=staff(points))
    assert verified.status_code == 200 and verified.json()["status"] == "verified"
    assert verified.json()["points_awarded"] == 10
    again = await points.client.post(f"/points/tasks/{task['id']}/verify", headers=staff(points))
    assert again.status_code == 200
    assert await balance(points, fan) == 10
    [completed] = await published(points, "minsheng.points.task.completed.v1")
    assert completed["task_id"] == task["id"] and completed["points"] == 10 and completed["origin"] is None
    mine = (await points.client.get("/points/tasks?mine=true", headers=fan.headers)).json()["items"]
    assert [t["status"] for t in mine] == ["verified"]


async def test_reject_reopens_and_release(points: System) -> None:
    await _type(points)
    fan = await rider(points)
    task = await _task(points)
    await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    released = await points.client.post(f"/points/tasks/{task['id']}/release", headers=fan.headers)
    assert released.json()["status"] == "open" and released.json()["claimed_by"] is None
    await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    await points.client.post(f"/points/tasks/{task['id']}/complete", headers=fan.headers, json={"note": "done"})
    r = await points.client.post(
        f"/points/tasks/{task['id']}/reject", headers=staff(points), json={"reason": "photo missing"}
    )
    assert r.status_code == 200 and r.json()["status"] == "open" and r.json()["closed_reason"] == "photo missing"
    assert await balance(points, fan) == 0
    assert (await points.client.post(f"/points/tasks/{task['id']}/verify", headers=staff(points))).json()[
        "code"
    ] == "task_not_submitted"


async def test_daily_cap_per_task_type(points: System) -> None:
    await _type(points, daily_cap=2, verification="auto")
    fan = await rider(points)
    awarded = []
    for _ in range(3):
        task = await _task(points)
        await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
        r = await points.client.post(f"/points/tasks/{task['id']}/complete", headers=fan.headers, json={"note": "ok"})
        assert r.json()["status"] == "verified"
        awarded.append((r.json()["points_awarded"], r.json()["capped"]))
    assert awarded == [(10, False), (10, False), (0, True)]
    assert await balance(points, fan) == 20
    with config.override(daily_earn_cap=25):
        await points.client.patch("/points/task-types/hazard_patrol", headers=staff(points), json={"daily_cap": 0})
        task = await _task(points)
        await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
        r = await points.client.post(f"/points/tasks/{task['id']}/complete", headers=fan.headers, json={"note": "x"})
        assert (r.json()["points_awarded"], r.json()["capped"]) == (5, True)  # the global daily cap
    assert await balance(points, fan) == 25


async def test_unverified_rider_cannot_claim_and_scope(points: System) -> None:
    await _type(points)
    newbie = await rider(points, "rider-new", verify=False)
    task = await _task(points)
    r = await points.client.post(f"/points/tasks/{task['id']}/claim", headers=newbie.headers)
    assert r.status_code == 403 and r.json()["code"] == "rider_not_verified"
    elsewhere = staff(points, "yunxing")
    assert (await points.client.get(f"/points/tasks/{task['id']}", headers=elsewhere)).status_code == 404
    r = await points.client.post(
        "/points/tasks", headers=elsewhere, json={"type_code": "hazard_patrol", "title": "x", "community": "gangcheng"}
    )
    assert r.status_code == 403
    r = await points.client.post(
        "/points/tasks", headers=staff(points), json={"type_code": "nope", "title": "x", "community": "gangcheng"}
    )
    assert r.status_code == 404 and r.json()["code"] == "task_type_not_found"
    r = await points.client.post("/points/task-types", headers=staff(points), json=PATROL)
    assert r.status_code == 409 and r.json()["code"] == "task_type_exists"


async def test_canteen_delivery_becomes_a_task_completion_tells_the_canteen(points: System) -> None:
    fan = await rider(points)
    event = _delivery(points=6)
    await deliver(points, event, "canteen", times=2)  # redelivered: still one task
    await deliver(points, _delivery(order_id=event.order_id), "canteen")  # a second event for the same order
    tasks = (await points.client.get("/points/tasks", headers=staff(points))).json()["items"]
    assert len(tasks) == 1
    task = tasks[0]
    assert (task["type_code"], task["origin_service"], task["origin_kind"], task["origin_id"], task["points"]) == (
        "meal_delivery",
        "canteen",
        "order",
        str(event.order_id),
        6,
    )
    assert task["pickup_address"] == "云兴街 12 号" and task["address"] == "云泰园 3 号楼 2 单元 501"

    claimed = await points.client.post(f"/points/tasks/{task['id']}/claim", headers=fan.headers)
    assert claimed.json()["address"] == "云泰园 3 号楼 2 单元 501"
    [claim_event] = await published(points, "minsheng.points.task.claimed.v1")
    assert claim_event["origin"] == {"service": "canteen", "kind": "order", "id": str(event.order_id)}
    done = await points.client.post(
        f"/points/tasks/{task['id']}/complete",
        headers=fan.headers,
        json={"photo_ids": [await upload_photo(points, fan.headers)]},
    )
    assert done.json()["status"] == "verified" and done.json()["points_awarded"] == 6
    [completed] = await published(points, "minsheng.points.task.completed.v1")
    assert completed["origin"] == {"service": "canteen", "kind": "order", "id": str(event.order_id)}
    assert completed["rider_id"] == fan.id and completed["points"] == 6
    assert await balance(points, fan) == 6

    # Cancelling after delivery changes nothing.
    await deliver(
        points, DeliveryCancelled(order_id=event.order_id, reason="late", cancelled_at=datetime.now(UTC)), "canteen"
    )
    after = (await points.client.get(f"/points/tasks/{task['id']}", headers=staff(points))).json()
    assert after["status"] == "verified" and await balance(points, fan) == 6


async def test_cancelled_delivery_is_withdrawn(points: System) -> None:
    fan = await rider(points)
    open_one, claimed_one = _delivery(), _delivery()
    await deliver(points, open_one, "canteen")
    await deliver(points, claimed_one, "canteen")
    tasks = {
        t["origin_id"]: t for t in (await points.client.get("/points/tasks", headers=staff(points))).json()["items"]
    }
    claimed_task = tasks[str(claimed_one.order_id)]
    await points.client.post(f"/points/tasks/{claimed_task['id']}/claim", headers=fan.headers)
    for e in (open_one, claimed_one):
        await deliver(
            points,
            DeliveryCancelled(order_id=e.order_id, reason="diner cancelled", cancelled_at=datetime.now(UTC)),
            "canteen",
        )
    statuses = {
        t["origin_id"]: (t["status"], t["closed_reason"])
        for t in (await points.client.get("/points/tasks", headers=staff(points))).json()["items"]
    }
    assert statuses == {
        str(open_one.order_id): ("withdrawn", "Cancelled: diner cancelled"),
        str(claimed_one.order_id): ("withdrawn", "Cancelled: diner cancelled"),
    }
    r = await points.client.post(
        f"/points/tasks/{claimed_task['id']}/complete", headers=fan.headers, json={"note": "x"}
    )
    assert r.status_code == 409 and r.json()["code"] == "task_not_claimed"
    assert await published(points, "minsheng.points.task.completed.v1") == []


async def test_overdue_open_tasks_expire(points: System) -> None:
    from services.points import jobs

    await deliver(points, _delivery(), "canteen")
    runtime = points.runtime("points")
    assert await jobs.expire_tasks(runtime) == 0
    from services.points import tasks as task_cases

    async with runtime.uow() as uow:
        n = await task_cases.expire_overdue(uow, now=datetime.now(UTC) + timedelta(hours=3))
        await uow.commit()
    assert n == 1
    [task] = (await points.client.get("/points/tasks", headers=staff(points))).json()["items"]
    assert task["status"] == "expired"
