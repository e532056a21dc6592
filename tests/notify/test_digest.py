"""The staff's daily digest: overdue issues and escalated needs notify consumed are gathered into one WeCom
message per duty group and day, after the digest time, once (redelivered events, a second run and a second
replica change nothing); lines that arrive after a group's digest wait for the next day's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

from minsheng.contracts.issues import IssueOverdue
from minsheng.contracts.visits import NeedEscalated
from services.notify.jobs import digest_markdown, send_digests
from tests.notify.helpers import deliver, flush, received
from tests.support.client import System

YESTERDAY = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai


def overdue(at: datetime, **kw: object) -> IssueOverdue:
    return IssueOverdue(
        **{
            "issue_id": uuid4(),
            "category": "flooding",
            "channel": "resident",
            "community": "yunxing",
            "compound": "yuntaiyuan",
            "occurred_at": at,
            "deadline": "resolution",
            "due_at": datetime(2026, 12, 5, 1, 0, tzinfo=UTC),
            "escalation_level": 1,
            **kw,
        }
    )


def escalated(at: datetime) -> NeedEscalated:
    return NeedEscalated(
        need_id=uuid4(),
        household_id=uuid4(),
        category="road",
        title="楼道灯坏了",
        description="五楼老人晚上看不见楼梯",
        urgency="high",
        community="yunxing",
        compound="yuntaiyuan",
        escalated_by="gw-changhong",
        escalated_at=at,
    )


async def test_one_digest_per_duty_group_and_day_from_what_notify_consumed(notify: System) -> None:
    s = notify
    runtime = s.runtime("notify")
    await deliver(s, overdue(YESTERDAY), source="issues", times=2)  # redelivered: one line
    await deliver(s, escalated(YESTERDAY), source="visits")
    # 08:10 in Shanghai: before the digest time, nothing yet.
    assert await send_digests(runtime, now=datetime(2026, 12, 6, 0, 10, tzinfo=UTC)) == 0
    nine = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    # Two replicas at once, then again: one digest.
    assert sorted(await asyncio.gather(send_digests(runtime, now=nine), send_digests(runtime, now=nine))) in (
        [0, 1],
        [1, 1],
    )
    assert await send_digests(runtime, now=nine) == 0
    await flush(s)
    [digest] = received(s, "wecom")
    assert digest["key"] == "standin-duty-robot" and digest["msgtype"] == "markdown"
    content = digest["markdown"]["content"]
    assert content.startswith("## 每日督办汇总 2026-12-06（全区）\n"), content
    assert "逾期 1 件" in content and "走访诉求上报 1 件" in content
    assert "> - yunxing yuntaiyuan 积水问题办结超时（1级督办，时限2026-12-05 09:00）" in content
    assert "> - yunxing yuntaiyuan 走访诉求上报：楼道灯坏了（道路，high，gw-changhong）" in content
    assert "五楼老人" not in content  # the need's description stays out of the staff group

    # Overdue after this morning's digest: in tomorrow's.
    await deliver(s, overdue(datetime(2026, 12, 6, 0, 20, tzinfo=UTC), category="road"), source="issues")
    assert await send_digests(runtime, now=datetime(2026, 12, 6, 5, 0, tzinfo=UTC)) == 0
    assert await send_digests(runtime, now=datetime(2026, 12, 7, 1, 0, tzinfo=UTC)) == 1
    await flush(s)
    tomorrow = received(s, "wecom")[-1]["markdown"]["content"]
    assert tomorrow.startswith("## 每日督办汇总 2026-12-07（全区）\n逾期 1 件\n") and "道路问题" in tomorrow


def test_a_long_digest_fits_the_robots_limit() -> None:
    lines = [("digest_issue_overdue", f"yunxing 第{i}件 积水问题办结超时（1级督办）" + "很长" * 20) for i in range(200)]
    content = digest_markdown("yunxing", "2026-12-06", lines)
    assert len(content.encode()) <= 4096 and content.startswith("## 每日督办汇总 2026-12-06（yunxing）\n逾期 200 件")
    assert content.endswith("件，请在工作台查看") and "另有" in content


async def test_a_residents_happiness_bill_comes_once_a_month(notify: System) -> None:
    from minsheng.contracts.visits import NeedProgressed
    from services.notify.jobs import send_bills
    from tests.notify.helpers import account, link, new_sub

    s = notify
    runtime = s.runtime("notify")
    staff_messages = len(received(s, "wecom"))
    sub, resident_id, nobody_linked = new_sub(), uuid4(), uuid4()
    await account(s, sub)
    await link(s, sub, "visits.resident", resident_id)

    def closed(resident: UUID, title: str, action: str, at: datetime) -> NeedProgressed:
        return NeedProgressed(
            need_id=uuid4(),
            household_id=uuid4(),
            resident_id=resident,
            action=action,  # type: ignore[arg-type]
            status="closed",
            category="road",
            title=title,
            community="yunxing",
            occurred_at=at,
        )

    november = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    await deliver(s, closed(resident_id, "送去拐杖", "confirmed", november), source="visits", times=2)
    await deliver(s, closed(resident_id, "楼道灯修好", "closed_by_issue_resolved", november), source="visits")
    await deliver(s, closed(resident_id, "不需要了", "closed", november), source="visits")  # not something done
    await deliver(s, closed(nobody_linked, "门禁修好", "confirmed", november), source="visits")
    await deliver(
        s, closed(resident_id, "十二月的事", "confirmed", datetime(2026, 12, 1, 1, 0, tzinfo=UTC)), source="visits"
    )
    first_of_month = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert await send_bills(runtime, now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC)) == 0  # still November there
    assert await send_bills(runtime, now=first_of_month) == 1
    assert await send_bills(runtime, now=first_of_month) == 0
    items = (await s.client.get("/notify/inbox", headers=s.auth("resident", sub=sub))).json()["items"]
    [bill] = [m for m in items if m["rule"] == "happiness_bill"]
    assert bill["title"] == "2026-11幸福账单"
    assert bill["body"] == "2026-11，社区为您办结2件事：送去拐杖（道路，2026-11-20）；楼道灯修好（道路，2026-11-20）。"
    assert await send_digests(runtime, now=first_of_month) == 0  # bills are not staff digests
    await flush(s)
    assert len(received(s, "wecom")) == staff_messages
