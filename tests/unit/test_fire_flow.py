"""Flow 1 and 2 in the embedded mode: a rider's fire report → an urgent issue → points for a true report."""

from __future__ import annotations

from typing import Any

from tests.support.client import System

FIRE: dict[str, Any] = {
    "category": "fire",
    "description": "Rubbish bin on fire near the Gangcheng theatre",
    "latitude": 40.0134,
    "longitude": 112.7032,
    "address": "Gangcheng theatre, west gate",
    "community": "yunxing",
    "compound": "yuntaiyuan",
}


async def register_rider(system: System, sub: str = "rider-fan") -> dict[str, str]:
    headers = system.auth("rider", sub=sub, scopes=())
    r = await system.client.post(
        "/points/riders",
        headers=headers,
        json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["phone"] == "138****5678"
    return headers


async def test_fire_report_becomes_urgent_issue_and_earns_points_once_verified(system: System) -> None:
    rider = await register_rider(system)
    staff = system.auth("staff", sub="staff-1", scopes=["community:yunxing"])

    r = await system.client.post("/points/hazard-reports", headers=rider, json=FIRE)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["urgent"] is True and report["status"] == "submitted"

    await system.settle()
    issues = (await system.client.get("/issues/issues", headers=staff)).json()["items"]
    assert len(issues) == 1
    issue = issues[0]
    assert issue["channel"] == "rider" and issue["urgent"] is True and issue["category"] == "fire"
    assert issue["origin_kind"] == "hazard_report" and issue["origin_id"] == report["id"]

    mine = (await system.client.get(f"/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "accepted" and mine["issue_id"] == issue["id"]
    assert (await system.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 0

    r = await system.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff, json={"note": "seen"})
    assert r.status_code == 200, r.text
    await system.settle()
    assert (await system.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 20

    r = await system.client.post(f"/issues/issues/{issue['id']}/resolve", headers=staff, json={"note": "out"})
    assert r.status_code == 200, r.text
    await system.settle()
    mine = (await system.client.get(f"/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "resolved" and mine["points_awarded"] == 20
    # Resolution after verification does not pay twice.
    assert (await system.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 20
    statement = (await system.client.get("/points/riders/me/statement", headers=rider)).json()["items"]
    assert [(e["kind"], e["amount"], e["cause_id"]) for e in statement] == [("earned", 20, report["id"])]


async def test_false_report_earns_nothing(system: System) -> None:
    rider = await register_rider(system)
    staff = system.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    r = await system.client.post("/points/hazard-reports", headers=rider, json={**FIRE, "category": "road"})
    report = r.json()
    assert report["urgent"] is False
    await system.settle()
    issue = (await system.client.get("/issues/issues", headers=staff)).json()["items"][0]
    r = await system.client.post(
        f"/issues/issues/{issue['id']}/reject", headers=staff, json={"reason": "Nothing there", "false_report": True}
    )
    assert r.status_code == 200, r.text
    await system.settle()
    mine = (await system.client.get(f"/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "rejected" and mine["points_awarded"] == 0
    assert (await system.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 0


async def test_a_second_riders_report_of_the_same_fire_joins_the_issue_and_both_earn(system: System) -> None:
    fan = await register_rider(system)
    wu = await register_rider(system, sub="rider-wu")
    staff = system.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    first = (await system.client.post("/points/hazard-reports", headers=fan, json=FIRE)).json()
    second = (
        await system.client.post(
            "/points/hazard-reports", headers=wu, json={**FIRE, "latitude": FIRE["latitude"] + 0.0002}
        )
    ).json()
    await system.settle()

    issues = (await system.client.get("/issues/issues", headers=staff)).json()["items"]
    assert len(issues) == 1  # one fire, one issue
    for report, headers in ((first, fan), (second, wu)):
        mine = (await system.client.get(f"/points/hazard-reports/{report['id']}", headers=headers)).json()
        assert mine["status"] == "accepted" and mine["issue_id"] == issues[0]["id"]

    r = await system.client.post(f"/issues/issues/{issues[0]['id']}/verify", headers=staff)
    assert r.status_code == 200, r.text
    await system.settle()
    for headers in (fan, wu):
        assert (await system.client.get("/points/riders/me/balance", headers=headers)).json()["balance"] == 20
