"""Flow 3, the issues side: a visit need escalated by a grid worker becomes an issue (idempotent on the need),
and every transition carries the need as its origin so the visits service can close or reopen the need."""

from __future__ import annotations

from minsheng.platform.ids import uuid7
from tests.issues.helpers import act, escalate, events_of, resident, staff
from tests.support.client import System


async def test_escalated_need_becomes_a_private_grid_worker_issue_once(everyone: System) -> None:
    issues = everyone
    need = uuid7()
    await escalate(issues, need)
    await escalate(issues, need)  # published twice (e.g. a retry on the visits side): still one issue
    created = [e for e in await events_of(issues, "created") if e["origin"] and e["origin"]["kind"] == "need"]
    assert len(created) == 1
    event = created[0]
    assert event["origin"] == {"service": "visits", "kind": "need", "id": str(need)}
    assert event["channel"] == "grid_worker" and event["urgent"] is False and event["community"] == "yuntai"

    desk = staff(issues)
    issue = (await issues.client.get(f"/issues/issues/{event['issue_id']}", headers=desk)).json()
    assert issue["reporter"] == "gw-changhong" and issue["is_public"] is False
    assert issue["origin_kind"] == "need" and issue["attributes"] == {"urgency": "high"}
    # A household's need is not public, but the grid worker who escalated it follows it.
    assert (await issues.client.get(f"/issues/issues/{issue['id']}", headers=resident(issues))).status_code == 404
    worker = issues.auth("grid_worker", sub="gw-changhong", scopes=["compound:yuntaiyuan"])
    mine = (await issues.client.get("/issues/issues", headers=worker, params={"mine": True})).json()["items"]
    assert [i["id"] for i in mine] == [issue["id"]]

    await act(issues, issue["id"], "assign", desk, {"departments": ["civil_affairs"]})
    await act(issues, issue["id"], "resolve", desk, {"note": "送去拐杖"})
    await act(issues, issue["id"], "reopen", desk, {"reason": "拐杖不合适"})
    await act(issues, issue["id"], "close-unresolved", desk, {"reason": "家属已自行购买"})
    for name in ("accepted", "assigned", "resolved", "reopened", "closed_unresolved"):
        [e] = await events_of(issues, name, issue["id"])
        assert e["origin"] == {"service": "visits", "kind": "need", "id": str(need)}, name


async def test_urgent_need_is_an_urgent_issue_and_a_second_need_nearby_is_linked(everyone: System) -> None:
    issues = everyone
    first, second = uuid7(), uuid7()
    await escalate(issues, first, category="water_leak", urgency="urgent", title="楼道水管爆裂")
    await escalate(issues, second, category="water_leak", urgency="normal", title="楼道漏水", latitude=40.00985)
    [created] = [e for e in await events_of(issues, "created") if e["category"] == "water_leak"]
    assert created["urgent"] is True
    [linked] = await events_of(issues, "linked", created["issue_id"])
    assert linked["attached"] == [{"service": "visits", "kind": "need", "id": str(second)}]
    await act(issues, created["issue_id"], "resolve", staff(issues))
    [resolved] = await events_of(issues, "resolved", created["issue_id"])
    assert resolved["origin"]["id"] == str(first) and resolved["linked"] == linked["attached"]


async def test_an_urgent_duplicate_makes_the_issue_urgent(everyone: System) -> None:
    issues = everyone
    from datetime import datetime, timedelta

    from tests.issues.helpers import FLOOD, report

    issue = await report(issues, resident(issues))
    assert issue["urgent"] is False
    await escalate(
        issues,
        uuid7(),
        category="flooding",
        urgency="urgent",
        title="积水进屋，老人被困",
        latitude=FLOOD["latitude"],
        longitude=FLOOD["longitude"],
    )
    now = (await issues.client.get(f"/issues/issues/{issue['id']}", headers=staff(issues))).json()
    assert now["urgent"] is True and now["reporter_count"] == 2
    due = datetime.fromisoformat(now["first_response_due_at"])
    assert due - datetime.fromisoformat(now["updated_at"]) <= timedelta(minutes=15)
