"""Issue rules end to end (embedded): a resident reports through the issues service, staff act, the reporter
gets an inbox message and, when subscribed, exactly one WeChat subscribe message per step."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import UUID

from minsheng.contracts.issues import IssueAssigned
from minsheng.platform.ids import utcnow
from services.issues.jobs import sweep_overdue
from services.notify.demo import demo_openid
from tests.issues.helpers import FAR, FLOOD, NEARBY, act, report, resident, staff
from tests.notify.helpers import account, deliver, deliveries, flush, new_sub, received, subscribe
from tests.support.client import System


async def test_resolving_an_issue_tells_the_reporter_in_the_inbox_and_by_wechat(notify: System) -> None:
    s = notify
    sub = new_sub()
    openid = demo_openid(sub)
    await account(s, sub, openid=openid, phone="13912345678")
    await subscribe(s, sub, "TPL_ISSUE_RESOLVED")
    me = resident(s, sub)
    issue = await report(s, me, FLOOD)
    desk = staff(s)
    await act(s, issue["id"], "accept", desk, {"template": "next_day_survey"})
    await act(s, issue["id"], "resolve", desk, {"template": "fixed"})
    await flush(s)

    inbox = (await s.client.get("/notify/inbox", headers=me)).json()
    assert inbox["unread"] == 2
    resolved, accepted = inbox["items"]
    assert resolved["rule"] == "issue_resolved" and resolved["title"] == "您反映的问题已办结"
    assert "积水" in resolved["body"] and "请确认并评价" in resolved["body"]
    assert resolved["link"] == f"pages/issue/confirm?id={issue['id']}"
    assert accepted["rule"] == "issue_accepted"

    [sent] = received(s, "wechat")  # accepted had no subscription: nothing sent for it
    assert sent["touser"] == openid and sent["template_id"] == "TPL_ISSUE_RESOLVED"
    assert sent["page"] == f"pages/issue/confirm?id={issue['id']}"
    assert sent["miniprogram_state"] == "formal" and sent["lang"] == "zh_CN"
    assert set(sent["data"]) == {"thing1", "thing2", "time3"}
    assert sent["data"]["thing1"] == {"value": "积水"}
    assert all(len(v["value"]) <= 20 for k, v in sent["data"].items() if k.startswith("thing"))
    wechat = await deliveries(s, channel="wechat")
    assert sorted((d.status, d.last_error) for d in wechat) == [("failed", "no_subscription"), ("sent", None)]
    assert received(s, "sms") == []  # issue rules never text

    # The subscription was one-time: a second resolution finds none left.
    subs = (await s.client.get("/notify/subscriptions", headers=me)).json()
    assert subs == [{"template_id": "TPL_ISSUE_RESOLVED", "credits": 0}]

    # Mark read.
    r = await s.client.post(f"/notify/inbox/{resolved['id']}/read", headers=me)
    assert r.status_code == 200 and r.json()["read_at"]
    r = await s.client.post("/notify/inbox/read", headers=me, json={})
    assert r.json() == {"marked": 1, "unread": 0}


async def test_rejected_redirected_overdue_closed_and_reopened_reach_the_reporter(notify: System) -> None:
    s = notify
    sub = new_sub()
    await account(s, sub, locale="en")
    me, desk = resident(s, sub), staff(s)
    a = await report(s, me, FLOOD)
    b = await report(s, me, {**FLOOD, "latitude": 40.05})
    c = await report(s, me, {**FLOOD, "latitude": 40.10})
    await act(s, a["id"], "redirect", desk, {"matter": "cert_residence"})
    await act(s, b["id"], "close-unresolved", desk, {"reason": "owner refused access"})
    await act(s, c["id"], "resolve", desk)
    await act(s, c["id"], "reopen", me, {"reason": "still flooded"})
    await flush(s)
    items = (await s.client.get("/notify/inbox", headers=me)).json()["items"]
    by_rule = {m["rule"]: m for m in items}
    assert set(by_rule) == {"issue_rejected", "issue_closed_unresolved", "issue_resolved", "issue_reopened"}
    assert by_rule["issue_rejected"]["title"] == "Your report was not accepted"  # the account's language
    assert "Please go to" in by_rule["issue_rejected"]["body"]
    assert "owner refused access" in by_rule["issue_closed_unresolved"]["body"]
    assert received(s, "wechat") == []  # no openid known: the inbox only


async def test_a_resident_never_sees_another_residents_messages(notify: System) -> None:
    s = notify
    mine, theirs = new_sub(), new_sub()
    me, other, desk = resident(s, mine), resident(s, theirs), staff(s)
    issue = await report(s, me, FLOOD)
    await act(s, issue["id"], "resolve", desk)
    await flush(s)
    [message] = (await s.client.get("/notify/inbox", headers=me)).json()["items"]
    r = (await s.client.get("/notify/inbox", headers=other)).json()
    assert r == {"items": [], "next_cursor": None, "unread": 0}
    r2 = await s.client.post(f"/notify/inbox/{message['id']}/read", headers=other)
    assert r2.status_code == 404
    assert (await s.client.post("/notify/inbox/read", headers=other, json={"ids": [message["id"]]})).json()[
        "marked"
    ] == 0
    assert (await s.client.get("/notify/inbox", headers=me)).json()["unread"] == 1
    assert (await s.client.get("/notify/deliveries", headers=me)).status_code == 403


async def test_co_reporters_and_followers_hear_the_issues_progress_and_others_do_not(notify: System) -> None:
    s = notify
    reporter, co_reporter, follower, bystander, merged_reporter = (new_sub() for _ in range(5))
    for sub in (reporter, co_reporter, follower, bystander, merged_reporter):
        await account(s, sub)
    issue = await report(s, resident(s, reporter), FLOOD)
    r = await s.client.post("/issues/issues", headers=resident(s, co_reporter), json={**FLOOD, **NEARBY})
    assert r.status_code == 200 and r.json()["attached"] is True  # a duplicate report: credited, follows it
    await act(s, issue["id"], "follow", resident(s, follower))
    await act(s, issue["id"], "follow", resident(s, follower))  # following again changes nothing
    # Another report of the same flood, far enough to be its own issue, is merged into this one by staff.
    other = await report(s, resident(s, merged_reporter), {**FLOOD, **FAR})
    desk = staff(s)
    await act(s, other["id"], "merge", desk, {"into": issue["id"]})
    await act(s, issue["id"], "accept", desk, {"template": "next_day_survey"})
    await act(s, issue["id"], "resolve", desk, {"template": "fixed"})
    await flush(s)

    for sub in (reporter, co_reporter, follower, merged_reporter):
        inbox = (await s.client.get("/notify/inbox", headers=resident(s, sub))).json()["items"]
        assert [m["rule"] for m in inbox] == ["issue_resolved", "issue_accepted"], sub
    bystander_inbox = (await s.client.get("/notify/inbox", headers=resident(s, bystander))).json()
    assert bystander_inbox["items"] == [] and bystander_inbox["unread"] == 0


async def test_assigned_and_the_overdue_apology_reach_the_reporter_in_the_inbox_and_by_wechat(notify: System) -> None:
    s = notify
    sub = new_sub()
    openid = demo_openid(sub)
    await account(s, sub, openid=openid)
    for _ in range(3):  # three taps: three credits, one per progress message
        await subscribe(s, sub, "TPL_ISSUE_PROGRESS")
    me = resident(s, sub)
    issue = await report(s, me, FLOOD)
    desk = staff(s)
    await act(s, issue["id"], "accept", desk, {"template": "next_day_survey"})
    await act(s, issue["id"], "assign", desk, {"departments": ["public_works", "property"]})
    await flush(s)
    # The resolution deadline passes: the issues service's sweep escalates it and says so.
    assert await sweep_overdue(s.runtime("issues"), now=utcnow() + timedelta(days=60)) >= 1
    await flush(s)

    items = (await s.client.get("/notify/inbox", headers=me)).json()["items"]
    assert [m["rule"] for m in items] == ["issue_overdue_apology", "issue_assigned", "issue_accepted"]
    overdue, assigned, _ = items
    assert assigned["title"] == "您反映的问题已派单"
    assert assigned["body"] == "您反映的积水问题已交由市政设施部、物业和住房保障部办理。"  # names, not codes
    assert overdue["title"] == "抱歉，办理超时了"
    assert overdue["body"] == "抱歉，您反映的积水问题办结已超时，已提交上级督办。"
    assert {m["link"] for m in items} == {f"pages/issue/detail?id={issue['id']}"}
    sent = received(s, "wechat")
    assert [m["data"]["phrase2"]["value"] for m in sent] == ["已受理", "已派单", "已督办"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", sent[1]["data"]["time3"]["value"])
    assert {k: v for k, v in sent[1]["data"].items() if k != "time3"} == {
        "thing1": {"value": "积水"},
        "phrase2": {"value": "已派单"},
        "thing4": {"value": "市政设施部、物业和住房保障部"},  # the departments by name (the template's 4th keyword)
    }
    assert {(m["touser"], m["template_id"], m["page"]) for m in sent} == {
        (openid, "TPL_ISSUE_PROGRESS", f"pages/issue/detail?id={issue['id']}")
    }


async def test_the_inbox_pages_newest_first_by_keyset_and_counts_the_unread(notify: System) -> None:
    s = notify
    me, desk = resident(s, new_sub()), staff(s)
    issues = [await report(s, me, {**FLOOD, "latitude": 40.0 + n / 20}) for n in range(5)]
    for issue in issues:
        await act(s, issue["id"], "resolve", desk)
    await flush(s)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await s.client.get("/notify/inbox", headers=me, params=params)).json()
        assert len(page["items"]) <= 2 and page["unread"] == 5
        seen += [m["subject_ref"] for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"issue:{i['id']}" for i in reversed(issues)]  # newest first, each once

    newest = (await s.client.get("/notify/inbox", headers=me, params={"limit": 1})).json()["items"][0]
    await s.client.post(f"/notify/inbox/{newest['id']}/read", headers=me)
    unread = (await s.client.get("/notify/inbox", headers=me, params={"unread_only": True})).json()
    assert unread["unread"] == 4 and newest["id"] not in [m["id"] for m in unread["items"]]
    assert len(unread["items"]) == 4


async def test_an_english_reader_sees_the_departments_english_names_and_an_older_event_no_codes(
    notify: System,
) -> None:
    s = notify
    sub = new_sub()
    openid = demo_openid(sub)
    await account(s, sub, openid=openid, locale="en")
    for _ in range(3):  # accepted and the two assignments
        await subscribe(s, sub, "TPL_ISSUE_PROGRESS")
    me, desk = resident(s, sub), staff(s)
    issue = await report(s, me, FLOOD)
    await act(s, issue["id"], "assign", desk, {"departments": ["public_works", "property"]})
    # An IssueAssigned published before the event carried the names (the same issue, assigned again).
    await deliver(
        s,
        IssueAssigned(
            issue_id=UUID(issue["id"]),
            category="flooding",
            channel="resident",
            occurred_at=utcnow(),
            reporter=sub,
            departments=["public_works"],
        ),
        source="issues",
    )
    await flush(s)

    items = (await s.client.get("/notify/inbox", headers=me)).json()["items"]
    assigned = [m["body"] for m in items if m["rule"] == "issue_assigned"]
    assert sorted(assigned) == [
        "Your flooding report went to Municipal Facilities, Property and Housing.",
        "Your flooding report went to the department responsible.",  # the older event: no names, no codes
    ]
    sent = [m for m in received(s, "wechat") if m["data"]["phrase2"]["value"] == "已派单"]
    assert {(m["touser"], m["lang"]) for m in sent} == {(openid, "en_US")}
    assert sorted(m["data"]["thing4"]["value"] for m in sent) == [
        "Municipal Facilitie…",  # a thing is cut to 20 characters
        "the department resp…",
    ]
    assert not any(code in body for body in assigned for code in ("public_works", "property"))
