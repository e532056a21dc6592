"""The duty roster and the urgent rule's people: staff keep who is on duty for a community (or the district)
under /notify/duty-roster; an urgent issue reaches the duty group's WeCom robot and every person on duty there,
by WeChat when they subscribed, else (or when WeChat refuses for good) by SMS — day or night. Nobody off duty
or on duty elsewhere hears of it, and a non-urgent rule never falls back to SMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa

from minsheng.contracts.issues import IssueAccepted, IssueCreated
from minsheng.platform.sql import table_of
from services.notify import config
from services.notify.models import DutyShift
from tests.notify.helpers import NOW, account, deliver, deliveries, flush, new_sub, received, subscribe
from tests.support.client import System


def staff(s: System, community: str = "yunxing") -> dict[str, str]:
    return s.auth("staff", sub=f"staff-{community}", scopes=[f"community:{community}"])


async def on_duty(s: System, headers: dict[str, str], status: int = 201, **body: Any) -> Any:
    r = await s.client.post("/notify/duty-roster", headers=headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


def urgent(community: str = "yunxing", *, is_urgent: bool = True, reporter: str | None = None) -> IssueCreated:
    return IssueCreated(
        issue_id=uuid4(),
        category="fire",
        channel="rider",
        urgent=is_urgent,
        community=community,
        compound="yunxingyuan",
        occurred_at=NOW,
        title="垃圾桶起火",
        reporter=reporter,
    )


async def inbox_rules(s: System, sub: str) -> list[str]:
    r = await s.client.get("/notify/inbox", headers=s.auth("staff", sub=sub))
    assert r.status_code == 200, r.text
    return [m["rule"] for m in r.json()["items"]]


def quiet_now() -> dict[str, Any]:
    """Quiet hours around the present moment (an hour either side, local time)."""
    local = datetime.now(config.get().tz)
    start, end = (local - timedelta(hours=1)).time(), (local + timedelta(hours=1)).time()
    return {**config.get().model_dump(), "quiet_start": start, "quiet_end": end}


async def test_staff_keep_the_roster_of_their_community_and_admins_the_districts(notify: System) -> None:
    s = notify
    person = new_sub()
    shift = await on_duty(s, staff(s), community="yunxing", account_id=person, name="王值班", phone="13912345678")
    assert shift["phone_masked"] == "139****5678" and shift["on_duty"] is True and "phone" not in shift
    assert shift["created_by"] == "staff-yunxing" and shift["ends_at"] is None
    async with s.runtime("notify").db.engine.connect() as conn:
        [stored] = (await conn.execute(sa.select(table_of(DutyShift).c.phone_enc))).scalars().all()
    assert stored and "13912345678" not in stored  # encrypted at rest

    # Another community's staff may not put anyone on duty here, nor see this community's shifts.
    r = await s.client.post(
        "/notify/duty-roster", headers=staff(s, "yuntai"), json={"community": "yunxing", "account_id": person}
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await s.client.get("/notify/duty-roster", headers=staff(s, "yuntai"))).json()["items"] == []
    # The district's roster is an admin's; a shift must end after it starts; residents keep no roster.
    r = await s.client.post("/notify/duty-roster", headers=staff(s), json={"community": "*", "account_id": person})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    later = datetime.now(UTC) + timedelta(days=1)
    district = await on_duty(
        s, s.auth("admin", sub="admin-1"), community="*", account_id=new_sub(), starts_at=later.isoformat()
    )
    assert district["on_duty"] is False
    r = await s.client.post(
        "/notify/duty-roster",
        headers=staff(s),
        json={"community": "yunxing", "account_id": person, "ends_at": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 422 and r.json()["code"] == "duty_shift_ends_before_start"
    r = await s.client.get("/notify/duty-roster", headers=s.auth("resident", sub=person))
    assert r.status_code == 403
    resident = new_sub()
    await account(s, resident)  # identity says this account is a resident's: not one to put on duty
    body = {"community": "yunxing", "account_id": resident}
    r = await s.client.post("/notify/duty-roster", headers=staff(s), json=body)
    assert r.status_code == 422 and r.json()["code"] == "duty_shift_not_staff"

    # Community staff see their shifts and the district's; filtered by who is on duty now.
    items = (await s.client.get("/notify/duty-roster", headers=staff(s))).json()["items"]
    assert [i["id"] for i in items] == [district["id"], shift["id"]]
    now = (await s.client.get("/notify/duty-roster", headers=staff(s), params={"on_duty": "true"})).json()
    assert [i["id"] for i in now["items"]] == [shift["id"]]

    r = await s.client.delete(f"/notify/duty-roster/{district['id']}", headers=staff(s))
    assert r.status_code == 403
    assert (await s.client.delete(f"/notify/duty-roster/{shift['id']}", headers=staff(s))).status_code == 204
    r = await s.client.delete(f"/notify/duty-roster/{shift['id']}", headers=staff(s))
    assert r.status_code == 404 and r.json()["code"] == "duty_shift_not_found"


async def test_an_urgent_fire_reaches_the_robot_and_the_people_on_duty_by_sms_even_in_quiet_hours(
    notify: System,
) -> None:
    s = notify
    verified, entered_only, off_duty, elsewhere, district = (new_sub() for _ in range(5))
    # On WeChat but no subscription, a verified phone from identity (it wins over the one entered).
    await account(s, verified, openid="oDuty0000000000000001", phone="13800000001", roles=("staff",))
    await on_duty(s, staff(s), community="yunxing", account_id=verified, phone="13800000091")
    await on_duty(s, staff(s), community="yunxing", account_id=entered_only, phone="13800000002")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await on_duty(
        s,
        staff(s),
        community="yunxing",
        account_id=off_duty,
        phone="13800000003",
        starts_at=(yesterday - timedelta(hours=8)).isoformat(),
        ends_at=yesterday.isoformat(),
    )
    await on_duty(s, staff(s, "yuntai"), community="yuntai", account_id=elsewhere, phone="13800000004")
    await on_duty(s, s.auth("admin", sub="admin-1"), community="*", account_id=district, phone="13800000005")

    with config.override(**quiet_now()):
        await deliver(s, urgent(), source="issues", times=2)  # redelivered: still once each
        await flush(s)

    [robot] = received(s, "wecom")
    assert robot["markdown"]["content"].startswith("【紧急】yunxing yunxingyuan 火情")
    texts = received(s, "sms")
    assert sorted(t["phone"] for t in texts) == ["+8613800000001", "+8613800000002", "+8613800000005"]
    assert all(
        t["TemplateId"] == "1900003" and t["TemplateParamSet"] == ["yunxing", "yunxingyuan", "火情"] for t in texts
    )
    assert received(s, "wechat") == []  # no subscription: WeChat could not go, SMS did
    [failed] = await deliveries(s, channel="wechat")
    assert failed.status == "failed" and failed.last_error == "no_subscription"
    fallback = [d for d in await deliveries(s, channel="sms") if d.fallback_of is not None]
    assert [d.fallback_of for d in fallback] == [failed.id] and fallback[0].urgent
    for person in (verified, entered_only, district):
        assert await inbox_rules(s, person) == ["urgent_issue_on_duty"]
    for person in (off_duty, elsewhere):
        assert await inbox_rules(s, person) == []
    assert not [d for d in await deliveries(s) if d.recipient_key in (f"account:{off_duty}", f"account:{elsewhere}")]


async def test_wechat_refusing_for_good_falls_back_to_sms_and_a_subscriber_gets_wechat(notify: System) -> None:
    s = notify
    refused, subscriber = new_sub(), new_sub()
    await account(s, refused, openid="not an openid!", phone="13800000011", roles=("staff",))
    await account(s, subscriber, openid="oDuty0000000000000012", phone="13800000012", roles=("staff",))
    for person in (refused, subscriber):
        await subscribe(s, person, "TPL_URGENT_ISSUE")
        await on_duty(s, staff(s), community="yunxing", account_id=person)

    await deliver(s, urgent(), source="issues")
    await flush(s)

    [wechat] = received(s, "wechat")
    assert wechat["touser"] == "oDuty0000000000000012" and wechat["template_id"] == "TPL_URGENT_ISSUE"
    assert wechat["data"]["thing1"] == {"value": "火情"} and wechat["data"]["thing2"] == {"value": "垃圾桶起火"}
    assert [t["phone"] for t in received(s, "sms")] == ["+8613800000011"]  # 40003 for the other: SMS instead
    [bad] = [d for d in await deliveries(s, channel="wechat") if d.recipient_key == f"account:{refused}"]
    assert bad.status == "failed" and "40003" in (bad.last_error or "")
    [sms] = await deliveries(s, channel="sms")
    assert sms.fallback_of == bad.id and sms.address_masked == "138****0011"


async def test_a_non_urgent_rule_never_falls_back_and_a_non_urgent_issue_reaches_nobody_on_duty(
    notify: System,
) -> None:
    s = notify
    person = new_sub()
    await account(s, person, openid="not an openid!", phone="13800000021", roles=("staff",))
    await subscribe(s, person, "TPL_ISSUE_PROGRESS", "TPL_URGENT_ISSUE")
    await on_duty(s, staff(s), community="yunxing", account_id=person, phone="13800000022")

    created = urgent(is_urgent=False, reporter=person)
    await deliver(s, created, source="issues")
    await deliver(
        s,
        IssueAccepted(
            issue_id=created.issue_id,
            category="fire",
            channel="rider",
            community="yunxing",
            occurred_at=NOW,
            reporter=person,
        ),
        source="issues",
    )
    await flush(s)

    assert received(s, "wecom") == [] and received(s, "sms") == [] and received(s, "wechat") == []
    assert await inbox_rules(s, person) == ["issue_accepted"]
    [refused] = await deliveries(s, channel="wechat")
    assert refused.status == "failed" and "40003" in (refused.last_error or "")
    assert await deliveries(s, channel="sms") == []
