"""Deadlines: due times from the catalogue, overdue detection with escalation (once per deadline), urgent
acknowledgement within minutes, auto-confirmation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from minsheng.platform.ids import utcnow, uuid7
from services.issues.jobs import auto_confirm, sweep_overdue
from tests.issues.helpers import FLOOD, HERE, act, escalate, events_of, report, resident, staff
from tests.support.client import System


async def test_overdue_issues_escalate_once_per_deadline(issues: System) -> None:
    rt = issues.runtime("issues")
    desk = staff(issues)
    late = await report(issues, resident(issues, "res-a"))
    answered = await report(issues, resident(issues, "res-b"), {**FLOOD, "latitude": 40.03})
    await act(issues, answered["id"], "accept", desk)
    done = await report(issues, resident(issues, "res-c"), {**FLOOD, "latitude": 40.04})
    await act(issues, done["id"], "resolve", desk)

    assert await sweep_overdue(rt) == 0  # nothing is due yet
    day_and_a_bit = utcnow() + timedelta(days=1, minutes=1)
    assert await sweep_overdue(rt, now=day_and_a_bit) == 1  # only the unanswered one missed its first response
    assert await sweep_overdue(rt, now=day_and_a_bit) == 0  # flagged once
    [event] = await events_of(issues, "overdue")
    assert event["issue_id"] == late["id"] and event["deadline"] == "first_response" and event["escalation_level"] == 1

    escalated = (await issues.client.get("/issues/escalations", headers=desk)).json()["items"]
    assert [i["id"] for i in escalated] == [late["id"]] and escalated[0]["overdue"] is True
    assert (await issues.client.get("/issues/escalations", headers=resident(issues))).status_code == 403

    week_later = utcnow() + timedelta(days=7, minutes=1)
    assert await sweep_overdue(rt, now=week_later) == 2  # both open issues missed the resolution deadline
    resolution = [e for e in await events_of(issues, "overdue") if e["deadline"] == "resolution"]
    assert {e["issue_id"] for e in resolution} == {late["id"], answered["id"]}
    levels = {
        i["id"]: i["escalation_level"]
        for i in (await issues.client.get("/issues/escalations", headers=desk)).json()["items"]
    }
    assert levels == {late["id"]: 2, answered["id"]: 1}
    timeline = (await issues.client.get(f"/issues/issues/{late['id']}", headers=desk)).json()["timeline"]
    assert [e["data"].get("deadline") for e in timeline if e["action"] == "overdue"] == ["first_response", "resolution"]
    first = (await issues.client.get("/issues/escalations", headers=desk)).json()["items"][0]
    assert first["id"] == late["id"]  # the most escalated first
    one = (await issues.client.get("/issues/escalations", headers=desk, params={"limit": 1})).json()
    rest = await issues.client.get(
        "/issues/escalations", headers=desk, params={"limit": 1, "cursor": one["next_cursor"]}
    )
    assert [i["id"] for i in one["items"] + rest.json()["items"]] == [late["id"], answered["id"]]
    assert rest.json()["next_cursor"] is None

    overdue = (await issues.client.get("/issues/issues", headers=desk, params={"overdue": True})).json()["items"]
    assert {i["id"] for i in overdue} == {late["id"], answered["id"]}
    on_time = (await issues.client.get("/issues/issues", headers=desk, params={"overdue": False})).json()["items"]
    assert [i["id"] for i in on_time] == [done["id"]]


async def test_two_replicas_sweeping_at_once_flag_each_deadline_once(issues: System) -> None:
    rt = issues.runtime("issues")
    for n in range(6):
        await report(issues, resident(issues, f"res-{n}"), {**FLOOD, "latitude": 40.0 + n / 100})
    later = utcnow() + timedelta(days=8)
    counts = await asyncio.gather(sweep_overdue(rt, now=later), sweep_overdue(rt, now=later))
    assert sum(counts) == 12
    assert len(await events_of(issues, "overdue")) == 12


async def test_urgent_issues_must_be_acknowledged_within_minutes(everyone: System) -> None:
    issues = everyone
    rt = issues.runtime("issues")
    fire = await report(
        issues, resident(issues), {"category": "fire", "description": "冒烟", **HERE, "community": "yuntai"}
    )
    created = datetime.fromisoformat(fire["created_at"])
    assert await sweep_overdue(rt, now=created + timedelta(minutes=4)) == 0
    assert await sweep_overdue(rt, now=created + timedelta(minutes=6)) == 1
    [event] = await events_of(issues, "overdue", fire["id"])
    assert event["urgent"] is True and event["deadline"] == "first_response"

    # An urgent escalated need in a non-urgent category: acknowledged within the configured 15 minutes.
    await escalate(issues, uuid7(), title="独居老人摔倒", description="需要立即上门", urgency="urgent")
    [need_issue] = [e for e in await events_of(issues, "created") if e["channel"] == "grid_worker"]
    detail = (await issues.client.get(f"/issues/issues/{need_issue['issue_id']}", headers=staff(issues))).json()
    due = datetime.fromisoformat(detail["first_response_due_at"]) - datetime.fromisoformat(detail["created_at"])
    assert detail["urgent"] is True and due == timedelta(minutes=15)


async def test_resolved_issues_are_confirmed_automatically_after_n_days(issues: System) -> None:
    rt = issues.runtime("issues")
    me, desk = resident(issues), staff(issues)
    quiet = await report(issues, me)
    answered = await report(issues, me, {**FLOOD, "latitude": 40.03})
    for issue in (quiet, answered):
        await act(issues, issue["id"], "resolve", desk)
    await act(issues, answered["id"], "confirm", me, {"rating": 4})
    assert await auto_confirm(rt, now=utcnow() + timedelta(days=6)) == 0
    assert await auto_confirm(rt, now=utcnow() + timedelta(days=7, minutes=1)) == 1
    assert await auto_confirm(rt, now=utcnow() + timedelta(days=8)) == 0
    detail = (await issues.client.get(f"/issues/issues/{quiet['id']}", headers=me)).json()
    assert detail["status"] == "confirmed" and detail["rating"] is None
    assert detail["timeline"][-1]["data"] == {"auto": True}
    autos = [e for e in await events_of(issues, "confirmed") if e["auto"]]
    assert [e["issue_id"] for e in autos] == [quiet["id"]]
