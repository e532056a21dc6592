"""Residents hear about the needs recorded at their door (progress, closure 销号) through the account linked to
their visits record; families hear that an elder's delivered meal arrived or was cancelled."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from minsheng.contracts.canteen import DeliveryCancelled, OrderDelivered
from minsheng.contracts.visits import NeedProgressed
from tests.notify.helpers import account, deliver, flush, link, new_sub, received, subscribe
from tests.support.client import System

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def progressed(need_id: UUID, resident_id: UUID | None, action: str, status: str) -> NeedProgressed:
    return NeedProgressed(need_id=need_id, household_id=uuid4(), resident_id=resident_id,
                          action=action, status=status, category="elderly_care",  # type: ignore[arg-type]
                          title="腿受伤，需要拐杖", community="yuntai", compound="yuntaiyuan",
                          due_on=date(2026, 12, 9), occurred_at=NOW)


async def inbox(s: System, sub: str) -> list[dict[str, Any]]:
    r = await s.client.get("/notify/inbox", headers=s.auth("resident", sub=sub))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_a_need_recorded_at_the_door_its_progress_and_closure_reach_the_resident(notify: System) -> None:
    s = notify
    sub, neighbour, resident_id, need_id = new_sub(), new_sub(), uuid4(), uuid4()
    await account(s, sub, openid="oResident00000000000001")
    await link(s, sub, "visits.resident", resident_id)
    await account(s, neighbour)
    await link(s, neighbour, "visits.resident", uuid4())
    await subscribe(s, sub, "TPL_NEED_PROGRESS")
    await subscribe(s, sub, "TPL_NEED_PROGRESS")  # two taps, two credits
    for action, status in (("raised", "open"), ("started", "in_progress"), ("resolved", "resolved"),
                           ("confirmed", "confirmed")):
        await deliver(s, progressed(need_id, resident_id, action, status), source="visits")
    await deliver(s, progressed(uuid4(), None, "raised", "open"), source="visits")  # about no one in particular
    await flush(s)
    items = await inbox(s, sub)
    assert [m["rule"] for m in items] == ["need_closed", "need_resolved", "need_progress", "need_recorded"]
    assert items[3]["body"] == "入户走访时记录的诉求“腿受伤，需要拐杖”已登记入台账，预计2026-12-09前办结。"
    assert items[0]["body"] == "您的诉求“腿受伤，需要拐杖”已办结销号，已记入您家的幸福账单。"
    assert items[1]["link"] == f"pages/visits/need/confirm?id={need_id}"
    wechat = received(s, "wechat")  # two credits: recorded and resolved went, closed found none left
    assert [w["data"]["phrase2"]["value"] for w in wechat] == ["已登记", "待确认"]
    assert all(w["template_id"] == "TPL_NEED_PROGRESS" and w["touser"] == "oResident00000000000001"
               for w in wechat)
    assert await inbox(s, neighbour) == []


async def test_families_hear_a_delivered_meal_arrived_or_was_cancelled(notify: System) -> None:
    s = notify
    son, daughter, grandson, stranger = new_sub(), new_sub(), new_sub(), new_sub()
    diner_id = uuid4()
    await account(s, son, openid="oSon000000000000000001")
    await subscribe(s, son, "TPL_MEAL_ORDER")
    await account(s, grandson, locale="en")
    await account(s, stranger)
    delivered = OrderDelivered(order_id=uuid4(), delivered_at=NOW, diner_id=diner_id, meal_date=date(2026, 12, 6),
                               slot="lunch", family_subjects=[son, daughter, grandson])
    await deliver(s, delivered, source="canteen", times=2)  # redelivered: one message each
    await deliver(s, DeliveryCancelled(order_id=uuid4(), reason="住院", cancelled_at=NOW, diner_id=diner_id,
                                       meal_date=date(2026, 12, 7), slot="dinner", family_subjects=[son]),
                  source="canteen")
    await deliver(s, OrderDelivered(order_id=uuid4(), delivered_at=NOW), source="canteen")  # an older producer
    await flush(s)
    mine = await inbox(s, son)
    assert [m["rule"] for m in mine] == ["order_cancelled_family", "order_delivered_family"]
    assert mine[1]["body"] == "您家人2026-12-06的午餐已于2026-12-06 11:00送到家。"
    assert mine[0]["body"] == "您家人2026-12-07的晚餐送餐已取消：住院。"
    # The daughter's login is known only from the event: her inbox has it when she signs in.
    assert [m["rule"] for m in await inbox(s, daughter)] == ["order_delivered_family"]
    [english] = await inbox(s, grandson)
    assert english["body"] == "Your family member's lunch for 2026-12-06 was delivered at 2026-12-06 11:00."
    [wechat] = received(s, "wechat")
    assert wechat["touser"] == "oSon000000000000000001" and wechat["template_id"] == "TPL_MEAL_ORDER"
    assert wechat["data"] == {"thing1": {"value": "午餐"}, "phrase2": {"value": "已送达"},
                              "time3": {"value": "2026-12-06 11:00"}}
    assert await inbox(s, stranger) == []
