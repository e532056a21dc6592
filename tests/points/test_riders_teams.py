"""Riders and teams: registration, staff verification, roles, red-led teams, suspension, scope."""

from __future__ import annotations

from tests.points.helpers import red_team, rider, staff
from tests.support.client import System


async def test_registration_verification_and_profile(points: System) -> None:
    fan = await rider(points, verify=False)
    me = (await points.client.get("/points/riders/me", headers=fan.headers)).json()
    assert me["status"] == "pending" and me["role"] == "yellow" and me["phone"] == "138****5678"
    dup = await points.client.post(
        "/points/riders", headers=fan.headers, json={"name": "x", "platform": "eleme", "phone": "13800000000"}
    )
    assert dup.status_code == 409 and dup.json()["code"] == "rider_already_registered"
    pending = (await points.client.get("/points/riders?status=pending", headers=staff(points))).json()["items"]
    assert [r["id"] for r in pending] == [fan.id]
    v = await points.client.post(f"/points/riders/{fan.id}/verify", headers=staff(points, sub="staff-9"))
    assert v.json()["status"] == "active" and v.json()["verified_by"] == "staff-9"
    p = await points.client.patch("/points/riders/me", headers=fan.headers, json={"platform": "eleme"})
    assert p.status_code == 200 and p.json()["platform"] == "eleme"
    bad = await points.client.post(
        "/points/riders", headers=points.auth("rider", "x", ()), json={"name": "", "platform": "m", "phone": "12"}
    )
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"name", "phone"}
    unregistered = await points.client.get("/points/riders/me", headers=points.auth("rider", "ghost", ()))
    assert unregistered.status_code == 404 and unregistered.json()["code"] == "rider_not_registered"


async def test_staff_scope_and_roles(points: System) -> None:
    fan = await rider(points)
    elsewhere = staff(points, "yunxing")
    assert (await points.client.get(f"/points/riders/{fan.id}", headers=elsewhere)).status_code == 404
    assert (await points.client.get("/points/riders", headers=elsewhere)).json()["items"] == []
    assert (await points.client.get("/points/riders", headers=fan.headers)).status_code == 403
    r = await points.client.patch(f"/points/riders/{fan.id}", headers=staff(points), json={"role": "blue"})
    assert r.json()["role"] == "blue"
    r = await points.client.patch(f"/points/riders/{fan.id}", headers=staff(points), json={"role": "purple"})
    assert r.status_code == 422
    r = await points.client.patch(f"/points/riders/{fan.id}", headers=staff(points), json={"community": "yunxing"})
    assert r.status_code == 403 and r.json()["code"] == "outside_scope"


async def test_teams_are_led_by_red_riders(points: System) -> None:
    h = staff(points)
    leader = await rider(points)
    r = await points.client.post(
        "/points/teams",
        headers=h,
        json={"name": "港城红骑士1队", "community": "gangcheng", "leader_rider_id": leader.id},
    )
    assert r.status_code == 409 and r.json()["code"] == "leader_not_red"
    team = await red_team(points, leader)
    assert team["leader_rider_id"] == leader.id and team["members"] == 1
    dup = await points.client.post("/points/teams", headers=h, json={"name": "港城红骑士1队", "community": "gangcheng"})
    assert dup.status_code == 409 and dup.json()["code"] == "team_name_taken"
    demote = await points.client.patch(f"/points/riders/{leader.id}", headers=h, json={"role": "yellow"})
    assert demote.status_code == 409 and demote.json()["code"] == "rider_leads_team"
    member = await rider(points, "rider-y", name="王强", phone="13900000000")
    await points.client.patch(f"/points/riders/{member.id}", headers=h, json={"team_id": team["id"]})
    listed = (await points.client.get("/points/teams", headers=member.headers)).json()["items"]
    assert [(t["name"], t["members"]) for t in listed] == [("港城红骑士1队", 2)]
    members = (await points.client.get(f"/points/riders?team_id={team['id']}", headers=h)).json()["items"]
    assert {m["id"] for m in members} == {leader.id, member.id}
    left = await points.client.patch(f"/points/riders/{member.id}", headers=h, json={"leave_team": True})
    assert left.json()["team_id"] is None
    outside = await points.client.post(
        "/points/teams", headers=staff(points, "yunxing"), json={"name": "x", "community": "gangcheng"}
    )
    assert outside.status_code == 403


async def test_suspend_and_reinstate(points: System) -> None:
    fan = await rider(points)
    h = staff(points)
    s = await points.client.post(f"/points/riders/{fan.id}/suspend", headers=h, json={"reason": "fake reports"})
    assert s.json()["status"] == "suspended" and s.json()["status_reason"] == "fake reports"
    assert (await points.client.post(f"/points/riders/{fan.id}/suspend", headers=h, json={})).status_code == 422
    back = await points.client.post(f"/points/riders/{fan.id}/reinstate", headers=h, json={"reason": "reviewed"})
    assert back.json()["status"] == "active"
