"""The workflow with its timeline: accept → assign (co-handling departments) → in progress → resolve →
confirm / reopen; reject, redirect (not ours), close unresolved; comments; who may do what."""

from __future__ import annotations

from datetime import timedelta

from minsheng.platform.ids import utcnow
from tests.issues.helpers import FAR, FLOOD, PNG, act, events_of, report, resident, staff, update_issue
from tests.support.client import System


async def test_full_lifecycle_with_timeline_and_events(issues: System) -> None:
    jiao, desk = resident(issues), staff(issues)
    works = issues.auth("staff", sub="officer-wang", scopes=["department:public_works"])
    issue = await report(issues, jiao)
    iid = issue["id"]

    accepted = await act(issues, iid, "accept", desk, {"template": "next_day_survey"})
    assert accepted["status"] == "accepted" and accepted["first_responded_at"] is not None
    assert "明日到现场查看" in accepted["status_note"] and "雨后" not in accepted["status_note"]
    # The department sees nothing until the issue is dispatched to it.
    assert (await issues.client.get("/issues/issues", headers=works)).json()["items"] == []
    assert (await issues.client.get(f"/issues/issues/{iid}/contact", headers=works)).status_code in (403, 404)

    assigned = await act(
        issues,
        iid,
        "assign",
        desk,
        {"departments": ["public_works", "property"], "officer": "officer-wang", "note": "co-handled"},
    )
    assert assigned["status"] == "assigned" and assigned["departments"] == ["public_works", "property"]
    listed = (await issues.client.get("/issues/issues", headers=works)).json()["items"]
    assert [i["id"] for i in listed] == [iid]
    by_dept = (await issues.client.get("/issues/issues", headers=desk, params={"department": "property"})).json()
    assert [i["id"] for i in by_dept["items"]] == [iid]
    await act(issues, iid, "accept", desk, expect=409)  # already past that step

    started = await act(issues, iid, "start", works, {"note": "pump on the way"})
    assert started["status"] == "in_progress"
    photo = (
        await issues.client.post("/issues/photos", headers=works, files={"file": ("after.png", PNG, "image/png")})
    ).json()
    resolved = await act(issues, iid, "resolve", works, {"template": "fixed", "photo_ids": [photo["id"]]})
    assert resolved["status"] == "resolved" and resolved["resolved_at"] and resolved["closed_at"]
    assert "public_works" in resolved["status_note"]
    assert resolved["timeline"][-1]["data"]["photo_urls"] == [photo["url"]]

    await act(issues, iid, "confirm", resident(issues, "res-stranger"), {"rating": 5}, expect=403)
    confirmed = await act(issues, iid, "confirm", jiao, {"rating": 5, "comment": "谢谢！"})
    assert confirmed["status"] == "confirmed" and confirmed["rating"] == 5
    actions = [e["action"] for e in confirmed["timeline"]]
    assert actions == ["submitted", "accepted", "assigned", "in_progress", "resolved", "confirmed"]
    # Residents see roles, not staff accounts.
    assert all(e["actor"] in (None, "res-jiaona") for e in confirmed["timeline"])
    staff_view = (await issues.client.get(f"/issues/issues/{iid}", headers=desk)).json()
    assert staff_view["timeline"][1]["actor"] == "staff-yuntai"

    types = [e["type"].split(".")[3] for e in await events_of(issues, "created", iid)]
    assert types == ["created"]
    for name in ("accepted", "assigned", "resolved", "confirmed"):
        [event] = await events_of(issues, name, iid)
        assert event["issue_id"] == iid and event["category"] == "flooding"
    [assigned_event] = await events_of(issues, "assigned", iid)
    assert assigned_event["departments"] == ["public_works", "property"] and assigned_event["officer"] == "officer-wang"
    [confirmed_event] = await events_of(issues, "confirmed", iid)
    assert confirmed_event["rating"] == 5 and confirmed_event["auto"] is False


async def test_reopen_within_the_window_and_not_after(issues: System) -> None:
    jiao, desk = resident(issues), staff(issues)
    issue = await report(issues, jiao)
    await act(issues, issue["id"], "resolve", desk)
    reopened = await act(issues, issue["id"], "reopen", jiao, {"reason": "还是积水"})
    assert reopened["status"] == "reopened" and reopened["reopen_count"] == 1 and reopened["closed_at"] is None
    [event] = await events_of(issues, "reopened", issue["id"])
    assert event["reason"] == "还是积水"
    await act(issues, issue["id"], "resolve", desk)
    await update_issue(issues, issue["id"], resolved_at=utcnow() - timedelta(days=15))
    r = await issues.client.post(f"/issues/issues/{issue['id']}/reopen", headers=jiao, json={"reason": "again"})
    assert r.status_code == 409 and r.json()["code"] == "reopen_window_passed"
    await act(issues, issue["id"], "reopen", desk, {"reason": "inspection found it"})  # staff may


async def test_outcomes_rejected_redirected_closed_unresolved(issues: System) -> None:
    desk = staff(issues)
    a, b, c = [
        await report(issues, resident(issues, f"res-{n}"), {**FLOOD, "latitude": 40.0 + n / 100}) for n in range(3)
    ]
    r = await issues.client.post(f"/issues/issues/{a['id']}/reject", headers=desk, json={})
    assert r.status_code == 422
    rejected = await act(issues, a["id"], "reject", desk, {"template": "not_found_on_site", "false_report": True})
    assert rejected["status"] == "rejected" and "found nothing on site" in rejected["status_note"]
    [event] = await events_of(issues, "rejected", a["id"])
    assert event["false_report"] is True and event["redirect_to"] is None

    redirected = await act(issues, b["id"], "redirect", desk, {"matter": "cert_residence"})
    assert redirected["status"] == "redirected" and "派出所" in redirected["redirect_to"]
    [event] = await events_of(issues, "rejected", b["id"])
    assert event["redirect_to"] == redirected["redirect_to"] and event["false_report"] is False

    closed = await act(issues, c["id"], "close-unresolved", desk, {"reason": "业主拒绝入户"})
    assert closed["status"] == "closed_unresolved"
    [event] = await events_of(issues, "closed_unresolved", c["id"])
    assert event["reason"] == "业主拒绝入户"
    for issue in (a, b, c):
        await act(issues, issue["id"], "resolve", desk, expect=409)


async def test_comments_followers_and_internal_notes(issues: System) -> None:
    jiao, desk, neighbour = resident(issues), staff(issues), resident(issues, "res-neighbour")
    issue = await report(issues, jiao)
    path = f"/issues/issues/{issue['id']}/comments"
    r = await issues.client.post(path, headers=neighbour, json={"body": "我家也是"})
    assert r.status_code == 403 and r.json()["code"] == "not_a_participant"
    await act(issues, issue["id"], "follow", neighbour)
    assert (await issues.client.post(path, headers=neighbour, json={"body": "我家也是"})).status_code == 201
    r = await issues.client.post(path, headers=neighbour, json={"body": "x", "internal": True})
    assert r.status_code == 403
    note = {"body": "疑似管道堵塞", "internal": True}
    assert (await issues.client.post(path, headers=desk, json=note)).status_code == 201
    assert (await issues.client.post(path, headers=desk, json={"body": "明天上午到场"})).status_code == 201

    seen_by_resident = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=jiao)).json()
    notes = [e["note"] for e in seen_by_resident["timeline"] if e["action"] == "comment"]
    assert notes == ["我家也是", "明天上午到场"]
    seen_by_staff = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=desk)).json()
    assert "疑似管道堵塞" in [e["note"] for e in seen_by_staff["timeline"]]
    assert seen_by_staff["first_responded_at"] is not None  # a public staff reply is a first response
    mine = (await issues.client.get("/issues/issues", headers=neighbour, params={"mine": True})).json()["items"]
    assert [i["id"] for i in mine] == [issue["id"]]
    await act(issues, issue["id"], "resolve", desk)
    await act(issues, issue["id"], "confirm", neighbour, {"rating": 1}, expect=403)  # followers do not rate
    await act(issues, issue["id"], "reopen", neighbour, {"reason": "x"}, expect=403)


async def test_a_resent_comment_with_its_idempotency_key_is_posted_once(issues: System) -> None:
    """A phone that lost the answer sends the comment again with the same key: one comment, the first answer."""
    jiao = resident(issues)
    issue = await report(issues, jiao)
    path = f"/issues/issues/{issue['id']}/comments"
    headers = {**jiao, "Idempotency-Key": "c-1"}
    first = await issues.client.post(path, headers=headers, json={"body": "水还在漫"})
    again = await issues.client.post(path, headers=headers, json={"body": "水还在漫"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    other = await issues.client.post(path, headers=headers, json={"body": "又漫了"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # The same key on another issue is another comment.
    second = await report(issues, jiao, {**FLOOD, **FAR})
    elsewhere = await issues.client.post(
        f"/issues/issues/{second['id']}/comments", headers=headers, json={"body": "水还在漫"}
    )
    assert elsewhere.status_code == 201 and "Idempotent-Replayed" not in elsewhere.headers
    seen = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=jiao)).json()
    assert [e["note"] for e in seen["timeline"] if e["action"] == "comment"] == ["水还在漫"]


async def test_access_by_scope_role_and_privacy(issues: System) -> None:
    jiao = resident(issues)
    private = await report(issues, jiao, {**FLOOD, "is_public": False})
    public = await report(issues, resident(issues, "res-b"), {**FLOOD, "latitude": 40.02})
    stranger = resident(issues, "res-c")
    seen = {i["id"] for i in (await issues.client.get("/issues/issues", headers=stranger)).json()["items"]}
    assert seen == {public["id"]}
    assert (await issues.client.get(f"/issues/issues/{private['id']}", headers=stranger)).status_code == 404
    assert (await issues.client.get(f"/issues/issues/{private['id']}", headers=jiao)).status_code == 200
    assert (await issues.client.get(f"/issues/issues/{public['id']}", headers=stranger)).json()["reporter"] is None

    other_desk = staff(issues, "staff-nanjie", "community:nanjie")
    assert (await issues.client.get("/issues/issues", headers=other_desk)).json()["items"] == []
    r = await issues.client.post(f"/issues/issues/{private['id']}/accept", headers=other_desk)
    assert r.status_code == 404  # outside scope: does not leak
    r = await issues.client.post(f"/issues/issues/{public['id']}/accept", headers=other_desk)
    assert r.status_code == 403 and r.json()["code"] == "not_allowed"
    r = await issues.client.post(f"/issues/issues/{public['id']}/accept", headers=jiao)
    assert r.status_code == 403 and r.json()["code"] == "forbidden_role"
    desk_items = (await issues.client.get("/issues/issues", headers=staff(issues))).json()["items"]
    assert {i["id"] for i in desk_items} == {private["id"], public["id"]}

    r = await issues.client.get("/issues/issues", headers=jiao, params={"cursor": "garbage"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    r = await issues.client.get("/issues/issues", headers=jiao, params={"lat": 40.0})
    assert r.status_code == 422
    near = await issues.client.get(
        "/issues/issues", headers=stranger, params={"lat": 40.02, "lng": 112.6983, "radius_m": 200}
    )
    assert [i["id"] for i in near.json()["items"]] == [public["id"]]
