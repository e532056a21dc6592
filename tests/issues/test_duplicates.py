"""Duplicates: same category, within the radius and window → attached, reporter credited; merge and split."""

from __future__ import annotations

from datetime import timedelta

from minsheng.platform.ids import utcnow
from tests.issues.helpers import FAR, FLOOD, NEARBY, act, events_of, report, resident, staff, update_issue
from tests.support.client import System
from tests.unit.test_fire_flow import FIRE, register_rider


async def test_nearby_report_of_the_same_problem_joins_the_open_issue(issues: System) -> None:
    first = await report(issues, resident(issues, "res-a"))
    r = await issues.client.post("/issues/issues", headers=resident(issues, "res-b"), json={**FLOOD, **NEARBY})
    assert r.status_code == 200, r.text  # not created: attached
    second = r.json()
    assert second["attached"] is True and second["id"] == first["id"] and second["reporter_count"] == 2
    assert second["reporter"] is None  # a co-reporter does not learn the first reporter's account
    for sub in ("res-a", "res-b"):  # every reporter is credited and follows it
        mine = (await issues.client.get("/issues/issues", headers=resident(issues, sub), params={"mine": True})).json()[
            "items"
        ]
        assert [i["id"] for i in mine] == [first["id"]]
    assert len(await events_of(issues, "created")) == 1

    other_category = await report(
        issues, resident(issues, "res-c"), {**FLOOD, **NEARBY, "category": "road", "attributes": {}}
    )
    far = await report(issues, resident(issues, "res-d"), {**FLOOD, **FAR})
    assert len({first["id"], other_category["id"], far["id"]}) == 3

    # Outside the time window, or once the first is closed, a report is a new issue.
    await update_issue(issues, first["id"], created_at=utcnow() - timedelta(hours=80))
    late = await report(issues, resident(issues, "res-e"), {**FLOOD, **NEARBY})
    assert late["id"] != first["id"]
    await act(issues, late["id"], "resolve", staff(issues), {"note": "pumped out"})
    after = await report(issues, resident(issues, "res-f"), {**FLOOD, **NEARBY})
    assert after["id"] not in (late["id"], first["id"])


async def test_second_rider_report_of_a_fire_is_linked_and_both_riders_earn(everyone: System) -> None:
    issues = everyone
    fan = await register_rider(issues, "rider-fan")
    li = await register_rider(issues, "rider-li")
    desk = staff(issues, "staff-1", "community:yunxing")
    one = (await issues.client.post("/points/hazard-reports", headers=fan, json=FIRE)).json()
    await issues.settle()
    two = (await issues.client.post("/points/hazard-reports", headers=li, json={**FIRE, "latitude": 40.0136})).json()
    await issues.settle()

    [issue] = (await issues.client.get("/issues/issues", headers=desk)).json()["items"]
    assert issue["origin_id"] == one["id"] and issue["reporter_count"] == 2
    assert issue["linked"] == [{"service": "points", "kind": "hazard_report", "id": two["id"]}]
    [linked] = await events_of(issues, "linked", issue["id"])
    assert linked["attached"] == [{"service": "points", "kind": "hazard_report", "id": two["id"]}]

    await act(issues, issue["id"], "verify", desk, {"note": "seen"})
    [verified] = await events_of(issues, "verified", issue["id"])
    assert verified["origin"]["id"] == one["id"] and verified["linked"][0]["id"] == two["id"]
    await issues.settle()
    for rider in (fan, li):
        assert (await issues.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 20


async def test_staff_merge_and_split(issues: System) -> None:
    desk = staff(issues)
    a = await report(issues, resident(issues, "res-a"))
    b = await report(issues, resident(issues, "res-b"), {**FLOOD, **FAR})
    r = await issues.client.post(
        f"/issues/issues/{b['id']}/merge", headers=resident(issues, "res-b"), json={"into": a["id"]}
    )
    assert r.status_code == 403
    merged = await act(issues, b["id"], "merge", desk, {"into": a["id"], "note": "same flood"})
    assert merged["id"] == a["id"] and merged["reporter_count"] == 2
    b_now = (await issues.client.get(f"/issues/issues/{b['id']}", headers=desk)).json()
    assert b_now["status"] == "merged" and b_now["merged_into"] == a["id"]
    [event] = await events_of(issues, "merged", b["id"])
    assert event["into_issue_id"] == a["id"]
    mine = (await issues.client.get("/issues/issues", headers=resident(issues, "res-b"), params={"mine": True})).json()[
        "items"
    ]
    assert [i["id"] for i in mine] == [a["id"]]  # res-b now follows the issue that stays
    await act(issues, b["id"], "merge", desk, {"into": a["id"]}, expect=409)

    new = await act(issues, a["id"], "split", desk, {"subject": "res-b", "title": "另一处积水"}, expect=201)
    assert new["id"] not in (a["id"], b["id"]) and new["reporter"] == "res-b" and new["title"] == "另一处积水"
    a_now = (await issues.client.get(f"/issues/issues/{a['id']}", headers=desk)).json()
    assert a_now["reporter_count"] == 1
    r = await issues.client.post(f"/issues/issues/{a['id']}/split", headers=desk, json={"subject": "res-a"})
    assert r.status_code == 404 and r.json()["code"] == "reporter_not_found"  # the first reporter stays


async def test_private_matters_and_double_taps(issues: System) -> None:
    private = await report(issues, resident(issues, "res-a"), {**FLOOD, "is_public": False})
    neighbour = await report(issues, resident(issues, "res-b"), {**FLOOD, **NEARBY})
    assert neighbour["id"] != private["id"]  # a resident's report never joins someone else's private issue
    r = await issues.client.get(f"/issues/issues/{private['id']}", headers=resident(issues, "res-b"))
    assert r.status_code == 404

    quiet = await report(
        issues,
        resident(issues, "res-c"),
        {**FLOOD, **NEARBY, "is_public": False, "description": "我家门口也淹了，家里老人行动不便"},
        expect=200,
    )
    assert quiet["attached"] is True and quiet["id"] == neighbour["id"]
    public_timeline = (
        await issues.client.get(f"/issues/issues/{neighbour['id']}", headers=resident(issues, "res-d"))
    ).json()["timeline"]
    assert all("老人" not in (e["note"] or "") for e in public_timeline)  # a private report's words stay private

    again = await issues.client.post("/issues/issues", headers=resident(issues, "res-b"), json={**FLOOD, **NEARBY})
    assert again.status_code == 200 and again.json()["reporter_count"] == 2  # a double tap is not a new reporter
