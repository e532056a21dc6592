"""Intake from every channel: residents (with photos), staff on a resident's behalf, patrols; validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from minsheng.platform.ids import uuid7
from tests.issues.helpers import FLOOD, HERE, PNG, events_of, report, resident, staff
from tests.support.client import System


async def test_resident_reports_with_deadlines_from_the_catalogue(issues: System) -> None:
    me = resident(issues)
    issue = await report(issues, me)
    assert issue["status"] == "submitted" and issue["channel"] == "resident" and issue["attached"] is False
    assert issue["title"] == "积水内涝" and issue["reporter"] == "res-jiaona" and issue["departments"] == []
    assert issue["attributes"] == {"depth": "knee", "indoors": "no"}
    created = datetime.fromisoformat(issue["created_at"])
    assert datetime.fromisoformat(issue["first_response_due_at"]) - created == timedelta(days=1)
    assert datetime.fromisoformat(issue["resolution_due_at"]) - created == timedelta(days=7)
    assert issue["service_notice"] == "Site survey the next day; repair within a week."
    [created_event] = await events_of(issues, "created", issue["id"])
    assert created_event["channel"] == "resident" and created_event["community"] == "yuntai"

    mine = (await issues.client.get("/issues/issues", headers=me, params={"mine": True})).json()["items"]
    assert [i["id"] for i in mine] == [issue["id"]]
    detail = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=me)).json()
    assert [e["action"] for e in detail["timeline"]] == ["submitted"]


async def test_urgent_category_answers_with_emergency_guidance(issues: System) -> None:
    issue = await report(
        issues, resident(issues), {"category": "fire", "description": "楼道冒烟", **HERE, "community": "yuntai"}
    )
    assert issue["urgent"] is True and "119" in issue["emergency_guidance"]
    due = datetime.fromisoformat(issue["first_response_due_at"]) - datetime.fromisoformat(issue["created_at"])
    assert due == timedelta(minutes=5)
    [event] = await events_of(issues, "created", issue["id"])
    assert event["urgent"] is True


async def test_validation_is_problem_json_and_writes_nothing(issues: System) -> None:
    me = resident(issues)
    cases = [
        ({**FLOOD, "attributes": {}}, "invalid_attribute"),  # depth is required
        ({**FLOOD, "attributes": {"depth": "waist"}}, "invalid_attribute"),
        ({**FLOOD, "attributes": {"depth": "knee", "colour": "brown"}}, "invalid_attribute"),
        ({**FLOOD, "category": "nope"}, "unknown_category"),
        ({**FLOOD, "longitude": None}, "validation_error"),
        ({"category": "road", "description": "坑"}, "location_required"),
        ({**FLOOD, "community": "atlantis"}, "unknown_community"),
        ({**FLOOD, "photo_urls": ["https://cdn.example/p.jpg"]}, "photo_urls_not_accepted"),
        ({**FLOOD, "title": ""}, "validation_error"),
    ]
    for body, code in cases:
        r = await issues.client.post("/issues/issues", headers=me, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == code, (body, r.json())
    assert (await issues.client.post("/issues/issues", json=FLOOD)).status_code == 401
    assert (await issues.client.get("/issues/issues", headers=me, params={"mine": True})).json()["items"] == []
    assert await events_of(issues, "created") == []


async def test_photos_are_checked_by_content_and_owned(issues: System) -> None:
    me, other = resident(issues), resident(issues, "res-other")
    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("a.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    photo = r.json()
    assert photo["content_type"] == "image/webp" and (photo["width"], photo["height"]) == (1, 1)  # transparent
    got = await issues.client.get(photo["url"], follow_redirects=True)
    assert got.status_code == 200 and got.content.startswith(b"RIFF") and got.headers["content-type"] == "image/webp"

    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("a.jpg", b"<html>", "image/jpeg")})
    assert r.status_code == 415 and r.json()["code"] == "photo_type_not_allowed"
    big = b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024)
    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["code"] == "photo_too_large"

    r = await issues.client.post("/issues/issues", headers=other, json={**FLOOD, "photo_ids": [photo["id"]]})
    assert r.status_code == 422 and r.json()["code"] == "unknown_photo"
    issue = await report(issues, me, {**FLOOD, "photo_ids": [photo["id"]]})
    assert issue["photo_urls"] == [photo["url"]]


async def test_staff_report_for_a_resident_keeps_the_contact_private(issues: System) -> None:
    desk = staff(issues)
    body = {**FLOOD, "intake": "phone", "contact": {"name": "焦娜", "phone": "13912345678"}}
    issue = await report(issues, desk, body)
    assert issue["channel"] == "staff" and issue["intake"] == "phone"
    assert issue["contact_phone"] == "139****5678" and issue["contact_name"] == "焦*"

    public = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=resident(issues, "res-x"))).json()
    assert public["contact_phone"] is None and public["contact_name"] is None and public["reporter"] is None

    r = await issues.client.get(f"/issues/issues/{issue['id']}/contact", headers=desk)
    assert r.json() == {"name": "焦娜", "phone": "13912345678"}
    detail = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=desk)).json()
    assert [e["action"] for e in detail["timeline"]][-1] == "contact_viewed"  # the read is audited
    assert "contact_viewed" not in [e["action"] for e in public["timeline"]]
    assert (
        await issues.client.get(f"/issues/issues/{issue['id']}/contact", headers=resident(issues))
    ).status_code == 403

    r = await issues.client.post("/issues/issues", headers=resident(issues), json=body)
    assert r.status_code == 403 and r.json()["code"] == "contact_staff_only"
    r = await issues.client.post("/issues/issues", headers=staff(issues, "s2", "community:nanjie"), json=body)
    assert r.status_code == 403 and r.json()["code"] == "outside_scope"


async def test_patrols_grid_workers_and_inferred_community(issues: System) -> None:
    r = await issues.client.post("/issues/issues", headers=resident(issues), json={**FLOOD, "channel": "patrol"})
    assert r.status_code == 403 and r.json()["code"] == "not_a_patrol_member"
    volunteer = issues.auth("resident", sub="silver-1", scopes=["community:yuntai", "team:patrol"])
    issue = await report(issues, volunteer, {**FLOOD, "channel": "patrol", "community": None})
    assert issue["channel"] == "patrol" and issue["community"] == "yuntai"  # nearest community to the point
    worker = issues.auth("grid_worker", sub="gw-changhong", scopes=["compound:yuntaiyuan"])
    issue = await report(
        issues,
        worker,
        {"category": "elderly_care", "description": "老人腿伤", "community": "yuntai", "is_public": False},
    )
    assert issue["channel"] == "grid_worker"


async def test_idempotency_key_replays_the_first_answer(issues: System) -> None:
    me = resident(issues)
    headers = {**me, "Idempotency-Key": "k-1"}
    first = await issues.client.post("/issues/issues", headers=headers, json=FLOOD)
    again = await issues.client.post("/issues/issues", headers=headers, json=FLOOD)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await issues.client.post("/issues/issues", headers=headers, json={**FLOOD, "description": "x"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert len(await events_of(issues, "created")) == 1


async def test_bad_input_is_never_a_server_error(issues: System) -> None:
    me, desk = resident(issues), staff(issues)
    issue = await report(issues, me)
    probes: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/issues/issues", {"params": {"created_from": "2026-01-01T00:00:00"}}, 422),
        ("GET", "/issues/issues", {"params": {"status": "burning"}}, 422),
        ("GET", "/issues/issues", {"params": {"limit": 100000}}, 422),
        ("GET", "/issues/issues/not-a-uuid", {}, 422),
        ("GET", f"/issues/issues/{uuid7()}", {}, 404),
        ("POST", "/issues/issues", {"json": {**FLOOD, "attributes": ["depth"]}}, 422),
        ("POST", "/issues/issues", {"json": {**FLOOD, "photo_ids": ["x"]}}, 422),
        ("POST", "/issues/issues", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        (
            "POST",
            "/issues/votes",
            {
                "json": {
                    "community": "yuntai",
                    "question": "?",
                    "options": ["a", "b"],
                    "closes_at": "2030-01-01T00:00:00",
                }
            },
            422,
        ),
        ("POST", f"/issues/issues/{issue['id']}/assign", {"json": {"departments": []}}, 422),
        ("POST", f"/issues/issues/{issue['id']}/assign", {"json": {"departments": ["nowhere"]}}, 422),
        ("POST", f"/issues/issues/{issue['id']}/merge", {"json": {"into": issue["id"]}}, 409),
        ("POST", f"/issues/issues/{issue['id']}/confirm", {"json": {"rating": 9}}, 422),
        ("POST", f"/issues/issues/{issue['id']}/accept", {"json": {"template": "nope"}}, 422),
        ("POST", "/issues/photos", {}, 415),
        ("GET", "/issues/figures", {"params": {"from": "yesterday"}}, 422),
    ]
    for method, url, kw, status in probes:
        headers = {
            **(desk if "assign" in url or "merge" in url or "accept" in url or "votes" in url else me),
            **kw.pop("headers", {}),
        }
        r = await issues.client.request(method, url, headers=headers, **kw)
        assert r.status_code == status, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"], url
    detail = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=desk)).json()
    assert detail["status"] == "submitted" and [e["action"] for e in detail["timeline"]] == ["submitted"]
