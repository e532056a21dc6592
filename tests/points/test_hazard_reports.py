"""The rider's hazard channel: immediate acknowledgement, forwarding by event, duplicate detection, the
issue's progress on the report, points once for a true report, nothing for a false one, flags for staff."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import (
    IssueAssigned,
    IssueCreated,
    IssueLinked,
    IssueRejected,
    IssueResolved,
    IssueVerified,
)
from minsheng.platform.uow import UnitOfWork
from services.points import config, hazards
from tests.points.helpers import FIRE, balance, deliver, published, rider, staff
from tests.support.client import System


def _fact(report_id: str, issue_id: UUID, linked: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "issue_id": issue_id,
        "category": "fire",
        "channel": "rider",
        "urgent": True,
        "community": "gangcheng",
        "origin": Origin(service="points", kind="hazard_report", id=report_id),
        "linked": [Origin(service="points", kind="hazard_report", id=x) for x in linked],
        "occurred_at": datetime.now(UTC),
        **extra,
    }


async def _report(system: System, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    r = await system.client.post("/points/hazard-reports", headers=headers, json={**FIRE, **changes})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_report_is_acknowledged_and_forwarded(points: System) -> None:
    fan = await rider(points, verify=False)  # a fire is a fire: pending riders may report
    report = await _report(points, fan.headers)
    assert report["status"] == "submitted" and report["urgent"] is True
    assert report["progress"][0]["status"] == "submitted"
    [event] = await published(points, "minsheng.points.hazard.reported.v1")
    assert event["report_id"] == report["id"] and event["urgent"] is True and event["category"] == "fire"
    assert event.get("duplicate_of") is None
    assert "phone" not in event and "13812345678" not in str(event)


async def test_duplicates_same_rider_refused_other_rider_linked(points: System) -> None:
    fan = await rider(points)
    wu = await rider(points, "rider-wu", name="吴强", phone="13700000000")
    first = await _report(points, fan.headers)
    again = await points.client.post(
        "/points/hazard-reports",
        headers=fan.headers,
        json={**FIRE, "latitude": 40.0135, "description": "still burning"},
    )
    assert again.status_code == 409 and again.json()["code"] == "duplicate_report"
    assert again.json()["duplicate_of"] == first["id"]
    second = await _report(points, wu.headers, latitude=40.0136)  # ~22 m away, same minute
    assert second["duplicate_of"] == first["id"]
    far = await _report(points, wu.headers, latitude=40.03, address="Somewhere else")  # ~1.9 km away
    assert far["duplicate_of"] is None
    other_kind = await _report(points, fan.headers, category="water_leak")
    assert other_kind["duplicate_of"] is None
    events = await published(points, "minsheng.points.hazard.reported.v1")
    assert [e.get("duplicate_of") for e in events] == [None, first["id"], None, None]


async def test_verified_report_earns_once_and_progress_is_visible(points: System) -> None:
    fan = await rider(points)
    wu = await rider(points, "rider-wu", name="吴强", phone="13700000000")
    report = await _report(points, fan.headers)
    dup = await _report(points, wu.headers)
    issue_id = uuid4()
    await deliver(points, IssueCreated(title="Fire", **_fact(report["id"], issue_id)), "issues")
    await deliver(
        points, IssueAssigned(departments=["fire-safety"], **_fact(report["id"], issue_id, [dup["id"]])), "issues"
    )
    # Redelivery of the same verified event: points once.
    verified = await deliver(
        points, IssueVerified(note="Seen on site", **_fact(report["id"], issue_id, [dup["id"]])), "issues", times=3
    )
    await deliver(points, IssueResolved(note="Put out", **_fact(report["id"], issue_id, [dup["id"]])), "issues")
    assert await balance(points, fan) == 20 and await balance(points, wu) == 20
    mine = (await points.client.get(f"/points/hazard-reports/{report['id']}", headers=fan.headers)).json()
    assert mine["status"] == "resolved" and mine["issue_id"] == str(issue_id) and mine["points_awarded"] == 20
    assert [p["status"] for p in mine["progress"]] == ["submitted", "submitted", "assigned", "verified", "resolved"]
    assert mine["progress"][-1]["note"] == "Put out"
    statement = (await points.client.get("/points/riders/me/statement", headers=fan.headers)).json()["items"]
    assert [(e["kind"], e["amount"], e["cause_id"]) for e in statement] == [("earned", 20, report["id"])]
    assert statement[0]["event_id"] == str(verified.id)  # traceable to the event that caused it
    # Other riders cannot see it; staff in scope can, staff elsewhere cannot.
    assert (await points.client.get(f"/points/hazard-reports/{report['id']}", headers=wu.headers)).status_code == 404
    assert (await points.client.get(f"/points/hazard-reports/{report['id']}", headers=staff(points))).status_code == 200
    assert (
        await points.client.get(f"/points/hazard-reports/{report['id']}", headers=staff(points, "yunxing"))
    ).status_code == 404
    listed = (await points.client.get("/points/hazard-reports?status=resolved", headers=staff(points))).json()
    assert {r["id"] for r in listed["items"]} == {report["id"], dup["id"]}


async def test_false_reports_earn_nothing_take_back_and_flag_the_rider(points: System) -> None:
    fan = await rider(points)
    with config.override(false_report_flag_threshold=2, duplicate_window_minutes=0):
        first = await _report(points, fan.headers, category="road")
        issue = uuid4()
        await deliver(points, IssueVerified(**_fact(first["id"], issue, category="road")), "issues")
        assert await balance(points, fan) == 10
        rejected = IssueRejected(reason="Nothing there", false_report=True, **_fact(first["id"], issue))
        await deliver(points, rejected, "issues", times=2)
        assert await balance(points, fan) == 0
        rider_view = (await points.client.get(f"/points/riders/{fan.id}", headers=staff(points))).json()
        assert rider_view["false_reports"] == 1 and rider_view["flagged"] is False

        second = await _report(points, fan.headers, category="other")
        await deliver(
            points, IssueRejected(reason="Prank", false_report=True, **_fact(second["id"], uuid4())), "issues"
        )
    mine = (await points.client.get(f"/points/hazard-reports/{second['id']}", headers=fan.headers)).json()
    assert mine["status"] == "rejected" and mine["points_awarded"] == 0
    # A later verification of a rejected report pays nothing.
    await deliver(points, IssueVerified(**_fact(second["id"], uuid4())), "issues")
    assert await balance(points, fan) == 0
    flagged = (await points.client.get("/points/riders?flagged=true", headers=staff(points))).json()["items"]
    assert [r["id"] for r in flagged] == [fan.id] and "2 reports found false" in flagged[0]["flag_reason"]
    cleared = await points.client.post(
        f"/points/riders/{fan.id}/clear-flag", headers=staff(points), json={"reason": "talked to him"}
    )
    assert cleared.status_code == 200 and cleared.json()["flagged"] is False
    kinds = [
        e["kind"] for e in (await points.client.get("/points/riders/me/statement", headers=fan.headers)).json()["items"]
    ]
    assert kinds == ["reversed", "earned"]


async def test_daily_hazard_cap(points: System) -> None:
    fan = await rider(points)
    with config.override(hazard_daily_points_cap=30, duplicate_window_minutes=0):
        for i in range(3):
            report = await _report(points, fan.headers, latitude=40.0 + i)
            await deliver(points, IssueVerified(**_fact(report["id"], uuid4())), "issues")
    assert await balance(points, fan) == 30  # 20 + 10 (capped) + 0
    b = (await points.client.get("/points/riders/me/balance", headers=fan.headers)).json()
    assert b["earned_today"] == 30
    notes = [
        e["note"] for e in (await points.client.get("/points/riders/me/statement", headers=fan.headers)).json()["items"]
    ]
    assert "daily cap" in notes[0]


async def test_suspended_rider_cannot_report_and_bad_input(points: System) -> None:
    fan = await rider(points)
    r = await points.client.post(
        "/points/hazard-reports", headers=fan.headers, json={**FIRE, "category": "meteor", "latitude": 123}
    )
    assert r.status_code == 422 and {"category", "latitude"} <= {e["field"] for e in r.json()["errors"]}
    r = await points.client.post(
        "/points/hazard-reports", headers=fan.headers, json={**FIRE, "photo_urls": ["javascript:alert(1)"]}
    )
    assert r.status_code == 422
    await points.client.post(f"/points/riders/{fan.id}/suspend", headers=staff(points), json={"reason": "abuse"})
    r = await points.client.post("/points/hazard-reports", headers=fan.headers, json=FIRE)
    assert r.status_code == 403 and r.json()["code"] == "rider_suspended"
    assert await published(points, "minsheng.points.hazard.reported.v1") == []


async def test_rider_rate_limit(points: System) -> None:
    fan = await rider(points)
    with config.override(rider_rate_per_second=0.1, rider_burst=2, duplicate_window_minutes=0):
        codes = [
            (
                await points.client.post(
                    "/points/hazard-reports", headers=fan.headers, json={**FIRE, "latitude": 10.0 + i}
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [201, 201, 429]


async def test_an_issue_naming_a_report_twice_moves_it_once(points: System) -> None:
    """Issue events carry their origin in ``linked`` too: the report is one report, with one step a move."""
    fan = await rider(points)
    report = await _report(points, fan.headers)
    issue_id = uuid4()
    await deliver(points, IssueLinked(attached=[], **_fact(report["id"], issue_id, [report["id"]])), "issues")
    await deliver(
        points, IssueAssigned(departments=["fire-safety"], **_fact(report["id"], issue_id, [report["id"]])), "issues"
    )
    mine = (await points.client.get(f"/points/hazard-reports/{report['id']}", headers=fan.headers)).json()
    assert mine["status"] == "accepted" and mine["issue_id"] == str(issue_id)
    assert [p["status"] for p in mine["progress"]] == ["submitted", "submitted", "assigned"]
    assert mine["progress"][1]["note"] == "Attached to an open issue"


async def test_an_issue_opened_after_an_orm_change_in_the_same_unit_keeps_both(points: System) -> None:
    """A consumed batch is one unit of work: an ORM handler's change to a report, then the fast-path link of
    the same report, must both be written (the link reads the flushed row; the ORM copy is read again)."""
    fan = await rider(points)
    report = await _report(points, fan.headers)
    report_id, issue_id = UUID(report["id"]), uuid4()
    async with UnitOfWork(points.runtime("points").db, "points") as uow:
        loaded = await hazards.report_for_issue(uow, report_id)
        assert loaded is not None
        hazards.move_report(loaded, None, "assigned", "queued in this unit")
        await hazards.link_to_issue(uow, [report_id, uuid4()], issue_id, "An issue was opened")
        assert [p["status"] for p in loaded.progress] == ["submitted", "assigned", "submitted"]
        assert loaded.status == "accepted" and loaded.issue_id == issue_id
        await uow.commit()
    mine = (await points.client.get(f"/points/hazard-reports/{report['id']}", headers=fan.headers)).json()
    assert [p["status"] for p in mine["progress"]] == ["submitted", "assigned", "submitted"]
    assert mine["status"] == "accepted" and mine["issue_id"] == str(issue_id)
