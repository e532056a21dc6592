"""Flows across services in the embedded mode: a need escalated to the issues service closes by itself when
the issue is resolved (or goes back to its owner when rejected); a canteen absence alert becomes a welfare
check; a resident who died or moved away is announced without their ID number."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.base import Origin
from minsheng.contracts.canteen import AbsenceAlert
from minsheng.contracts.issues import IssueCreated, IssueLinked, IssueMerged, IssueReopened, IssueResolved
from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import field_cipher
from tests.support.client import System
from tests.visits.helpers import ZHAO_ID_NUMBER, Place, build_place


async def escalated_need(p: Place, title: str = "单元门禁坏了，老人进出困难") -> dict[str, Any]:
    v = await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "needs": [{"category": "safety", "title": title, "description": "3号楼2单元门禁损坏", "urgency": "high"}],
        },
        201,
    )
    need = v["needs"][0]
    out = await p.post(f"/needs/{need['id']}/escalate", p.worker, {"note": "需要街道协调维修"})
    assert out["status"] == "escalated" and out["escalated_at"] is not None
    return need  # type: ignore[no-any-return]


async def issue_for(system: System, headers: dict[str, str], need_id: str) -> dict[str, Any] | None:
    r = await system.client.get("/issues/issues", headers=headers, params={"community": "yuntai"})
    assert r.status_code == 200, r.text
    return next((i for i in r.json()["items"] if i.get("origin_id") == need_id), None)


async def outbox(system: System, event_type: str) -> list[dict[str, Any]]:
    db = system.runtime("visits").db
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.payload).where(t.c.type == event_type).order_by(t.c.id))).all()
    return [json.loads(r.payload) for r in rows]


async def test_an_escalated_need_closes_by_itself_when_its_issue_is_resolved(system: System) -> None:
    p = await build_place(system)
    need = await escalated_need(p)
    # The escalation left in the same transaction as the status change, without personal data.
    [event] = await outbox(system, "minsheng.visits.need.escalated.v1")
    assert event["data"]["need_id"] == need["id"] and event["data"]["community"] == "yuntai"
    assert event["data"]["address"] == "云泰园 3号楼 2单元 501室" and "需要街道协调维修" in event["data"]["description"]
    assert event["data"]["latitude"] == 40.0121 and event["data"]["escalated_by"] == "gw-changhong"
    assert "赵" not in json.dumps(event, ensure_ascii=False) and "1393520" not in json.dumps(event)

    await system.settle()
    issue = await issue_for(system, p.staff, need["id"])
    assert issue is not None and issue["origin_service"] == "visits" and issue["origin_kind"] == "need"
    mine = await p.get(f"/needs/{need['id']}", p.worker)
    assert mine["status"] == "escalated" and mine["issue_id"] == issue["id"]
    r = await system.client.post(f"/visits/needs/{need['id']}/escalate", headers=p.worker)
    assert r.status_code == 409 and r.json()["code"] == "already_escalated"

    r = await system.client.post(
        f"/issues/issues/{issue['id']}/resolve", headers=p.staff, json={"note": "街道已更换门禁 new door lock fitted"}
    )
    assert r.status_code == 200, r.text
    await system.settle()
    closed = await p.get(f"/needs/{need['id']}", p.worker)
    assert closed["status"] == "closed" and closed["closed_via"] == "issue"
    assert closed["resolution"] == "街道已更换门禁 new door lock fitted"
    assert [h["action"] for h in closed["history"]][-1] == "closed_by_issue_resolved"
    bill = await p.get(f"/households/{p.household_id}/bill", p.staff)
    assert bill["done"] == 1 and bill["lines"][0]["via_issue"] == issue["id"]
    # Recorded, escalated, closed out: each told (for notify) in the same transaction, without the description.
    told = [e["data"] for e in await outbox(system, "minsheng.visits.need.progressed.v1")]
    assert [(e["need_id"], e["action"], e["status"]) for e in told] == [
        (need["id"], "raised", "open"),
        (need["id"], "escalated", "escalated"),
        (need["id"], "closed_by_issue_resolved", "closed"),
    ]
    assert all("description" not in e and "3号楼2单元门禁损坏" not in json.dumps(e, ensure_ascii=False) for e in told)


async def test_a_rejected_issue_sends_the_need_back_to_its_owner(system: System) -> None:
    p = await build_place(system)
    need = await escalated_need(p, "楼顶漏水")
    await system.settle()
    issue = await issue_for(system, p.staff, need["id"])
    assert issue is not None
    r = await system.client.post(
        f"/issues/issues/{issue['id']}/reject",
        headers=p.staff,
        json={"reason": "属物业维修范围 the property manager's job"},
    )
    assert r.status_code == 200, r.text
    await system.settle()
    back = await p.get(f"/needs/{need['id']}", p.worker)
    assert back["status"] == "open" and back["owner"] == "gw-changhong"
    assert "物业" in back["returned_reason"] and back["history"][-1]["action"] == "returned_issue_rejected"
    assert [n["id"] for n in (await p.get("/needs", p.worker, params={"mine": True, "status": "open"}))["items"]] == [
        need["id"]
    ]
    # The owner takes it from here, here.
    done = await p.post(f"/needs/{need['id']}/resolve", p.worker, {"resolution": "物业已修好屋顶"})
    assert done["status"] == "resolved"


async def _emit(system: System, service: str, *events: Any) -> None:
    async with system.runtime(service).uow() as uow:
        for e in events:
            uow.emit(e)
        await uow.commit()
    await system.settle()


def _fact(issue_id: UUID, **kw: Any) -> dict[str, Any]:
    return {
        "issue_id": issue_id,
        "category": "safety",
        "channel": "grid_worker",
        "community": "yuntai",
        "occurred_at": datetime.now(UTC),
        "actor": "officer-3",
        **kw,
    }


async def test_linked_and_merged_issues_and_reopening_are_followed(system: System) -> None:
    """Issue events name needs in ``linked`` too: each is treated like the origin."""
    p = await build_place(system)
    v = await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "needs": [
                {"category": "environment", "title": "垃圾清运不及时"},
                {"category": "environment", "title": "垃圾站有味"},
            ],
        },
        201,
    )
    first, second = (n["id"] for n in v["needs"])
    origin1 = Origin(service="visits", kind="need", id=first)
    origin2 = Origin(service="visits", kind="need", id=second)
    a, b = uuid7(), uuid7()
    await _emit(
        system,
        "issues",
        IssueCreated(title="垃圾", **_fact(a, origin=origin1)),
        IssueCreated(title="垃圾", **_fact(b, origin=origin2)),
    )
    assert (await p.get(f"/needs/{first}", p.worker))["issue_id"] == str(a)
    await _emit(
        system,
        "issues",
        IssueMerged(into_issue_id=a, **_fact(b, origin=origin2)),
        IssueLinked(attached=[origin2], reason="merge", **_fact(a, origin=origin1, linked=[origin2])),
    )
    assert (await p.get(f"/needs/{second}", p.worker))["issue_id"] == str(a)
    await _emit(system, "issues", IssueResolved(note="已清运", **_fact(a, origin=origin1, linked=[origin2])))
    for nid in (first, second):
        need = await p.get(f"/needs/{nid}", p.worker)
        assert need["status"] == "closed" and need["closed_via"] == "issue" and need["resolution"] == "已清运"
    await _emit(system, "issues", IssueReopened(reason="又堆满了", **_fact(a, origin=origin1, linked=[origin2])))
    again = await p.get(f"/needs/{second}", p.worker)
    assert again["status"] == "escalated" and again["closed_at"] is None
    assert again["history"][-1]["action"] == "issue_reopened" and again["history"][-1]["note"] == "又堆满了"
    # Events for other services' objects are not ours.
    other = Origin(service="points", kind="hazard_report", id=str(uuid7()))
    await _emit(system, "issues", IssueResolved(note="x", **_fact(uuid7(), origin=other)))
    assert (await p.get(f"/needs/{second}", p.worker))["status"] == "escalated"


def _alert(resident_id: UUID | None, alert_id: UUID | None = None) -> AbsenceAlert:
    return AbsenceAlert(
        alert_id=alert_id or uuid7(),
        diner_id=uuid7(),
        resident_id=resident_id,
        canteen_id=uuid7(),
        community="yuntai",
        compound="yuntaiyuan",
        last_meal_on=date.today() - timedelta(days=4),
        days_absent=3,
        meals_last_30_days=26,
        raised_at=datetime.now(UTC),
    )


async def test_a_canteen_absence_alert_becomes_an_urgent_welfare_check(system: System) -> None:
    p = await build_place(system)
    alert = _alert(UUID(p.zhao_id))
    # Delivered twice (a second publication of the same alert), plus alerts that are not ours to act on.
    await _emit(system, "canteen", alert, _alert(UUID(p.zhao_id), alert.alert_id), _alert(None), _alert(uuid7()))
    tasks = (await p.get("/tasks", p.worker))["items"]
    assert len(tasks) == 1
    task = tasks[0]
    assert task["kind"] == "welfare_check" and task["urgent"] is True and task["alert_id"] == str(alert.alert_id)
    assert task["resident_id"] == p.zhao_id and task["assigned_worker_id"] == p.worker_id
    assert "3 days" in task["reason"]
    due = await p.get("/due", p.worker)
    assert [t["id"] for t in due["tasks"]] == [task["id"]]

    # Nobody home: the canteen hears about the attempt; the task stays open.
    await p.post("/visits", p.worker, {"household_id": p.household_id, "outcome": "not_home"}, 201)
    assert (await p.get(f"/tasks/{task['id']}", p.worker))["status"] == "open"
    visit = await p.post(
        "/visits",
        p.worker,
        {"household_id": p.household_id, "outcome": "visited", "task_id": task["id"], "notes": "老人感冒在家休息"},
        201,
    )
    assert visit["tasks_completed"] == [task["id"]]
    done = await p.get(f"/tasks/{task['id']}", p.worker)
    assert done["status"] == "done" and done["visit_id"] == visit["id"] and done["attempts"] == 2
    events = [e["data"] for e in await outbox(system, "minsheng.visits.welfare_check.completed.v1")]
    assert [(e["outcome"], e["alert_id"]) for e in events] == [
        ("not_home", str(alert.alert_id)),
        ("visited", str(alert.alert_id)),
    ]
    assert events[-1]["visit_id"] == visit["id"] and events[-1]["resident_id"] == p.zhao_id
    r = await system.client.post(
        "/visits/visits",
        headers=p.worker,
        json={"household_id": p.household_id, "outcome": "visited", "task_id": task["id"]},
    )
    assert r.status_code == 409 and r.json()["code"] == "task_not_open"


async def test_a_death_is_announced_with_a_keyed_hash_never_the_id_number(system: System) -> None:
    p = await build_place(system)
    await _emit(system, "canteen", _alert(UUID(p.zhao_id)))
    body = {"status": "deceased", "effective_date": (date.today() - timedelta(days=1)).isoformat()}
    r = await system.client.post(f"/visits/residents/{p.zhao_id}/status", headers=p.worker, json=body)
    assert r.status_code == 403
    r = await system.client.post(
        f"/visits/residents/{p.zhao_id}/status", headers=p.staff, json={**body, "effective_date": "2150-01-01"}
    )
    assert r.status_code == 422 and r.json()["code"] == "effective_date_in_future"
    out = await p.post(f"/residents/{p.zhao_id}/status", p.staff, body)
    assert out["status"] == "deceased"
    await p.post(f"/residents/{p.zhao_id}/status", p.staff, body)  # a retry announces nothing new
    events = await outbox(system, "minsheng.visits.resident.status_changed.v1")
    assert len(events) == 1
    data = events[0]["data"]
    assert data["resident_id"] == p.zhao_id and data["status"] == "deceased" and data["community"] == "yuntai"
    assert data["id_number_hash"] == field_cipher(system.settings).lookup_hash(ZHAO_ID_NUMBER)
    assert ZHAO_ID_NUMBER not in json.dumps(events[0])
    # Her welfare check is cancelled and nobody is left to visit at the door.
    assert (await p.get("/tasks", p.worker))["items"] == []
    h = await p.get(f"/households/{p.household_id}", p.worker)
    assert h["active_residents"] == 0 and h["next_due_on"] is None
    await system.settle()
