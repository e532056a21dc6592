"""Rules that cross services, end to end in the embedded mode: an urgent fire reaches the on-duty staff's
WeCom group by the background relays alone; riders hear about their points and tasks; an absence alert
reaches the family by SMS (or WeChat when they have an account), and the welfare check's outcome reaches the
same people."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from minsheng.contracts.canteen import FamilyContact
from minsheng.contracts.points import PointsPosted, TaskClaimed, TaskCompleted
from minsheng.contracts.visits import WelfareCheckCompleted
from services.issues.demo_catalogue import seed_catalogue
from services.notify import config
from tests.conftest import embedded_settings
from tests.notify.helpers import absence_alert, account, deliver, deliveries, flush, link, new_sub, received, subscribe
from tests.points.helpers import rider as points_rider
from tests.support.client import System, running_system
from tests.unit.test_fire_flow import FIRE

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


@pytest.fixture
async def three(tmp_path: Path, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    async with running_system(embedded_settings(tmp_path), services=("points", "issues", "notify")) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s


async def test_an_urgent_fire_reaches_the_duty_group_by_itself(three: System) -> None:
    s = three
    rider_sub = new_sub()
    registered = await points_rider(s, rider_sub, community="yunxing", verify=False)
    rider, rider_id = registered.headers, UUID(registered.id)
    await account(s, rider_sub, roles=("rider",))
    await link(s, rider_sub, "points.rider", rider_id)

    # Nothing but the background relays, consumers and sender at work: no settle(). How fast is a benchmark's
    # figure (``notify.fire_to_duty_group`` in bin/bench, target ≤ 1 s); the guard here only stops a hang.
    started = time.perf_counter()
    assert (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).status_code == 201
    while not received(s, "wecom"):
        assert time.perf_counter() - started < 30.0, "the duty group heard nothing"
        await asyncio.sleep(0.005)
    [alert] = received(s, "wecom")
    assert alert["msgtype"] == "markdown" and alert["key"] == "standin-duty-robot"
    assert alert["markdown"]["content"].startswith("【紧急】yunxing yuntaiyuan 火情")

    # Verified on site: the rider's points are posted and the rider hears of it.
    await s.settle()
    staff = s.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    issue = (await s.client.get("/issues/issues", headers=staff)).json()["items"][0]
    assert (await s.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff)).status_code == 200
    r = await s.client.post(f"/issues/issues/{issue['id']}/resolve", headers=staff, json={"note": "已扑灭"})
    assert r.status_code == 200, r.text
    await flush(s)
    items = (await s.client.get("/notify/inbox", headers=rider)).json()["items"]
    # The issue names the rider's report (reporter "rider:<id>"): the linked account hears of it too.
    rules = [m["rule"] for m in items]
    assert sorted(rules) == ["issue_accepted", "issue_resolved", "points_earned"], rules
    assert next(m for m in items if m["rule"] == "points_earned")["body"] == "您获得20积分（隐患上报），当前余额20。"
    assert len(received(s, "wecom")) == 1  # one urgent issue, one alert


async def test_a_rider_registered_in_points_is_linked_for_notify_without_anyone_else(three: System) -> None:
    """Points publishes the registration (``RiderAccountLinked`` on the ledger topic): no identity link needed."""
    s = three
    rider_sub = new_sub()
    await account(s, rider_sub, roles=("rider",))  # identity told notify about the account, nothing more
    rider = (await points_rider(s, rider_sub, community="yunxing", verify=False)).headers
    assert (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).status_code == 201
    await s.settle()
    staff = s.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    issue = (await s.client.get("/issues/issues", headers=staff)).json()["items"][0]
    assert (await s.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff)).status_code == 200
    await flush(s)
    items = (await s.client.get("/notify/inbox", headers=rider)).json()["items"]
    points = [m for m in items if m["rule"] == "points_earned"]
    assert [m["body"] for m in points] == ["您获得20积分（隐患上报），当前余额20。"]


async def post_points(
    s: System, rider_id: UUID, kind: str, amount: int, balance: int, cause_type: str = "task", cause_id: str = "x"
) -> None:
    """The points service posts a ledger entry of the rider's (``balance``: the balance after it)."""
    entry = PointsPosted(
        entry_id=uuid4(),
        rider_id=rider_id,
        kind=kind,
        amount=amount,
        balance_after=balance,
        cause_type=cause_type,
        cause_id=cause_id,
        posted_at=NOW,
    )
    await deliver(s, entry, source="points")


async def test_riders_hear_about_points_and_tasks_through_their_linked_account(notify: System) -> None:
    s = notify
    sub, rider_id = new_sub(), uuid4()
    await account(s, sub, openid="oRider0000000000000001", roles=("rider",))
    await link(s, sub, "points.rider", rider_id)
    await subscribe(s, sub, "TPL_POINTS")
    task_id = uuid4()
    await deliver(
        s,
        TaskCompleted(task_id=task_id, task_type="meal_delivery", rider_id=rider_id, completed_at=NOW, points=5),
        source="points",
    )
    for kind, amount, balance in (("earned", 5, 25), ("redeemed", -10, 15), ("expired", -3, 12)):
        await post_points(s, rider_id, kind, amount, balance, cause_id=str(task_id))
    await post_points(s, uuid4(), "earned", 5, 5)  # not linked
    await flush(s)
    items = (await s.client.get("/notify/inbox", headers=s.auth("rider", sub=sub))).json()["items"]
    assert [m["rule"] for m in items] == ["points_expired", "points_redeemed", "points_earned", "task_verified"]
    assert items[1]["body"] == "您已兑换10积分，当前余额15。"
    [wechat] = received(s, "wechat")  # one credit: the first of the two WeChat-bearing rules used it
    assert wechat["template_id"] == "TPL_POINTS" and wechat["data"]["number1"] == {"value": "5"}


async def test_riders_hear_a_task_claimed_and_points_reversed_or_voided_in_the_inbox_only(notify: System) -> None:
    s = notify
    sub, rider_id = new_sub(), uuid4()
    await account(s, sub, openid="oRider0000000000000002", roles=("rider",))
    await link(s, sub, "points.rider", rider_id)
    await subscribe(s, sub, "TPL_POINTS")  # a credit to spend: these rules still send no WeChat message
    await deliver(
        s,
        TaskClaimed(task_id=uuid4(), task_type="meal_delivery", rider_id=rider_id, claimed_at=NOW),
        source="points",
    )
    for kind, amount, balance, cause in (("reversed", -20, 5, "hazard_report"), ("voided", 10, 15, "redemption")):
        await post_points(s, rider_id, kind, amount, balance, cause_type=cause, cause_id=str(uuid4()))
    await flush(s)
    items = (await s.client.get("/notify/inbox", headers=s.auth("rider", sub=sub))).json()["items"]
    assert [(m["rule"], m["body"]) for m in items] == [
        ("points_voided", "商家撤销了一笔兑换，10积分已退回，当前余额15。"),
        ("points_reversed", "20积分已撤销（隐患上报），当前余额5。"),
        ("task_claimed", "您已领取送餐任务，请按时完成。"),
    ]
    assert received(s, "wechat") == [] and await deliveries(s, channel="wechat") == []


async def test_an_absence_alert_reaches_the_family_by_sms_and_wechat(notify: System) -> None:
    s = notify
    with_account, alert_id = new_sub(), uuid4()
    await account(s, with_account, openid="oFamily000000000000001")
    await subscribe(s, with_account, "TPL_CARE_ALERT")
    son, daughter = uuid4(), uuid4()
    alert = absence_alert(
        FamilyContact(member_id=son, subject="no-account-son", relation="son", phone="13935201101"),
        FamilyContact(member_id=daughter, subject=with_account, relation="daughter", phone="13935201102"),
        alert_id=alert_id,
    )
    await deliver(s, alert, source="canteen", times=2)  # redelivered: still one message each
    await flush(s)
    [sms] = received(s, "sms")
    assert sms["phone"] == "+8613935201101" and sms["TemplateId"] == "1900001"
    assert sms["TemplateParamSet"] == ["3", "2026-12-02"] and sms["SignName"] == "民生服务"
    assert sms["SmsSdkAppId"] == "1400000000"
    [wechat] = received(s, "wechat")
    assert wechat["touser"] == "oFamily000000000000001" and wechat["template_id"] == "TPL_CARE_ALERT"
    assert wechat["data"] == {
        "thing1": {"value": "长者就餐提醒"},
        "number2": {"value": "3"},
        "date3": {"value": "2026-12-02"},
    }
    inbox = (await s.client.get("/notify/inbox", headers=s.auth("resident", sub=with_account))).json()
    assert [m["rule"] for m in inbox["items"]] == ["canteen_absence_family"]
    sms_rows = await deliveries(s, channel="sms")
    assert [r.address_masked for r in sms_rows] == ["139****1101"]
    assert sms_rows[0].address_enc and "13935201101" not in sms_rows[0].address_enc  # encrypted at rest

    # The welfare check names only the alert: the same family hears the outcome (WeChat has no credit left,
    # so the daughter's message falls back to SMS).
    await deliver(
        s,
        WelfareCheckCompleted(visit_id=uuid4(), alert_id=alert_id, outcome="visited", completed_at=NOW),
        source="visits",
    )
    await flush(s)
    texts = received(s, "sms")
    assert sorted(t["phone"] for t in texts) == ["+8613935201101", "+8613935201101", "+8613935201102"]
    assert all(t["TemplateParamSet"] == ["已见到本人，情况正常"] for t in texts[1:])
    fallback = [r for r in await deliveries(s, channel="sms") if r.fallback_of is not None]
    assert len(fallback) == 1
