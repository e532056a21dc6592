"""The grid worker hears of a welfare check at once, end to end in the embedded mode: the canteen's absence alert
becomes a visit task in visits, which announces it (``WelfareCheckScheduled``, naming the grid worker's
account); notify puts it in that grid worker's inbox and sends the WeChat subscribe message they accepted.
Nobody else gets it: not the grid worker of another compound, not staff; the family hears the alert by SMS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from minsheng.contracts.canteen import AbsenceAlert, FamilyContact
from minsheng.contracts.visits import WelfareCheckScheduled
from minsheng.platform.ids import uuid7
from services.notify import config
from services.notify.rules import context
from tests.conftest import embedded_settings
from tests.notify.helpers import account, deliver, deliveries, flush, new_sub, received, subscribe
from tests.support.client import System, running_system
from tests.visits.helpers import build_place


@pytest.fixture
async def visits_notify(tmp_path: Path, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    async with running_system(embedded_settings(tmp_path), services=("visits", "notify")) as s:
        yield s


def alert(resident_id: str, *contacts: FamilyContact) -> AbsenceAlert:
    return AbsenceAlert(
        alert_id=uuid7(),
        diner_id=uuid7(),
        resident_id=UUID(resident_id),
        canteen_id=uuid7(),
        community="yuntai",
        compound="yuntaiyuan",
        last_meal_on=date(2026, 12, 2),
        days_absent=3,
        meals_last_30_days=26,
        raised_at=datetime(2026, 12, 6, 1, 0, tzinfo=UTC),
        family_contacts=list(contacts),
    )


async def inbox(s: System, sub: str, role: str = "grid_worker") -> list[dict[str, str]]:
    r = await s.client.get("/notify/inbox", headers=s.auth(role, sub=sub))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_the_grid_worker_in_charge_hears_of_the_welfare_check_and_nobody_else(visits_notify: System) -> None:
    s = visits_notify
    changhong, other = new_sub(), new_sub()
    p = await build_place(s, worker_sub=changhong)
    # Another grid worker of the community, covering another compound; both on WeChat and subscribed.
    r = await s.client.post(
        "/visits/compounds",
        headers=p.staff,
        json={"community": "yuntai", "code": "yuntaixinyuan", "name": "云泰新苑", "kind": "commercial"},
    )
    assert r.status_code == 201, r.text
    w = await p.post("/grid-workers", p.staff, {"subject": other, "name": "李明", "community": "yuntai"}, 201)
    await p.post(f"/grid-workers/{w['id']}/assignments", p.staff, {"compound": "yuntaixinyuan"}, 201)
    for sub, openid in ((changhong, "oGrid00000000000000001"), (other, "oGrid00000000000000002")):
        await account(s, sub, openid=openid, phone="13900001111", roles=("grid_worker",))
        await subscribe(s, sub, "TPL_VISIT_TASK", "TPL_CARE_ALERT")
    staff_sub = new_sub()
    await account(s, staff_sub, openid="oStaff0000000000000001", roles=("staff",))

    son = FamilyContact(member_id=uuid4(), relation="son", phone="13935201101")
    absent = alert(p.zhao_id, son)
    await deliver(s, absent, source="canteen", times=2)  # redelivered: one task, one message
    await flush(s)

    [task] = (await p.get("/tasks", p.worker))["items"]
    [told] = await inbox(s, changhong)
    assert told["rule"] == "welfare_check_grid_worker" and told["title"] == "请上门看望长者"
    due = datetime.fromisoformat(task["due_at"]).astimezone(config.get().tz).strftime("%Y-%m-%d %H:%M")
    assert told["body"] == (
        f"yuntaiyuan一位幸福食堂就餐老人已连续3天未就餐（最后一次2026-12-02），请于{due}前上门看望并记录走访。"
    )
    assert told["link"] == f"pages/visits/task?id={task['id']}"
    [wechat] = received(s, "wechat")
    assert wechat["touser"] == "oGrid00000000000000001" and wechat["template_id"] == "TPL_VISIT_TASK"
    assert wechat["page"] == f"pages/visits/task?id={task['id']}"
    assert wechat["data"] == {
        "thing1": {"value": "长者未到食堂就餐"},
        "number2": {"value": "3"},
        "time3": {"value": due},
    }
    # Nobody else: not the other compound's grid worker, not staff; the family has its own SMS.
    assert await inbox(s, other) == [] and await inbox(s, staff_sub, "staff") == []
    assert [t["phone"] for t in received(s, "sms")] == ["+8613935201101"]
    assert {d.recipient_key for d in await deliveries(s)} == {f"account:{changhong}", f"phone:{son.member_id}"}

    # The grid worker records the visit themselves: the outcome goes to the family, not back to them.
    await p.post("/visits", p.worker, {"household_id": p.household_id, "outcome": "visited"}, 201)
    await flush(s)
    assert [m["rule"] for m in await inbox(s, changhong)] == ["welfare_check_grid_worker"]
    assert len(received(s, "wechat")) == 1 and len(received(s, "sms")) == 2


async def test_a_welfare_check_nobody_covers_tells_no_one(notify: System) -> None:
    """A household no grid worker covers: the task waits for staff to assign it; notify has no one to tell."""
    await deliver(notify, scheduled(worker_subject=None), source="visits")
    await flush(notify)
    assert await deliveries(notify) == [] and received(notify, "wechat") == []


def scheduled(worker_subject: str | None) -> WelfareCheckScheduled:
    return WelfareCheckScheduled(
        task_id=uuid4(),
        alert_id=uuid4(),
        resident_id=uuid4(),
        household_id=uuid4(),
        community="yuntai",
        compound="yuntaiyuan",
        worker_subject=worker_subject,
        days_absent=3,
        last_meal_on=date(2026, 12, 2),
        due_at=datetime(2026, 12, 6, 8, 0, tzinfo=UTC) + timedelta(hours=24),
        scheduled_at=datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
    )


def test_the_due_time_is_rendered_in_local_time_and_the_login_never() -> None:
    """The message's time is Asia/Shanghai, as the grid worker reads it (08:00 UTC + 24 h → 16:00 next day)."""
    values = context(scheduled("secret-login"), "zh-CN")
    assert values["due_at"] == "2026-12-07 16:00" and "worker_subject" not in values
