"""The visits API in the embedded mode: personal data, access, visit outcomes and the schedule, the needs
ledger, handover, rounds, coverage, policies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa

from minsheng.platform.sql import table_of
from services.visits import config
from services.visits.models import Resident
from tests.support.client import System
from tests.visits.helpers import ZHAO_ID_NUMBER, Place, build_place


@pytest.fixture
def pinned() -> Iterator[list[datetime]]:
    """Move the visits clock: ``pinned.append(when)`` then call ``config.pin_clock``; released afterwards."""
    holder: list[datetime] = []
    yield holder
    config.pin_clock(None)


async def test_personal_data_is_encrypted_masked_and_every_reveal_is_audited(system: System) -> None:
    p = await build_place(system)
    zhao = await p.get(f"/residents/{p.zhao_id}", p.staff)
    assert zhao["phone"] == "139****1101"
    assert zhao["id_number"] == ZHAO_ID_NUMBER[:6] + "********" + ZHAO_ID_NUMBER[-4:]
    assert zhao["has_health_notes"] is True and "health_notes" not in zhao
    assert zhao["birth_date"] == "1941-03-08" and zhao["age"] >= 85  # taken from the ID number

    async with system.runtime("visits").db.engine.connect() as conn:
        table = table_of(Resident)
        row = (await conn.execute(sa.select(table).where(table.c.id == UUID(p.zhao_id)))).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    assert ZHAO_ID_NUMBER not in stored and "左腿" not in stored
    assert row["id_number_enc"].startswith("v2:") and len(row["id_number_hash"]) == 64

    # Staff without the permission may not reveal; nothing is written to the audit trail.
    r = await system.client.post(
        f"/visits/residents/{p.zhao_id}/reveal",
        headers=p.staff,
        json={"fields": ["id_number"], "reason": "subsidy application"},
    )
    assert r.status_code == 403 and r.json()["code"] == "reveal_not_permitted"
    assert r.headers["content-type"].startswith("application/problem+json")

    officer = system.auth("staff", sub="officer-li", scopes=["community:yuntai", "pii:reveal"])
    out = await p.post(
        f"/residents/{p.zhao_id}/reveal",
        officer,
        {"fields": ["id_number", "phone", "health_notes"], "reason": "subsidy application"},
    )
    assert out["id_number"] == ZHAO_ID_NUMBER and out["phone"] == "13935201101"
    assert out["health_notes"] == "左腿受伤，行走困难"
    r = await system.client.post(
        f"/visits/residents/{p.zhao_id}/reveal", headers=officer, json={"fields": ["phone"], "reason": ""}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"

    # Another community's officer, even with the permission, does not find her.
    stranger = system.auth("staff", sub="officer-x", scopes=["community:nanjie", "pii:reveal"])
    r = await system.client.post(
        f"/visits/residents/{p.zhao_id}/reveal", headers=stranger, json={"fields": ["phone"], "reason": "curious"}
    )
    assert r.status_code == 404

    r = await system.client.get("/visits/pii-audit", headers=officer)
    assert r.status_code == 403 and r.json()["code"] == "audit_not_permitted"
    auditor = system.auth("staff", sub="auditor", scopes=["community:yuntai", "pii:audit"])
    trail = (await p.get("/pii-audit", auditor, params={"resident_id": p.zhao_id}))["items"]
    assert len(trail) == 1
    assert trail[0]["actor"] == "officer-li" and trail[0]["fields"] == ["health_notes", "id_number", "phone"]
    assert trail[0]["reason"] == "subsidy application" and trail[0]["id"] == out["audit_id"]

    # Look-up by ID number (in the body, matched by keyed hash); bad and duplicate numbers are refused.
    found = await p.post("/residents/lookup", p.staff, {"id_number": ZHAO_ID_NUMBER.lower()})
    assert found["id"] == p.zhao_id
    bad = ZHAO_ID_NUMBER[:17] + ("1" if ZHAO_ID_NUMBER[17] == "0" else "0")
    r = await system.client.post(
        "/visits/residents", headers=p.staff, json={"household_id": p.household_id, "name": "X", "id_number": bad}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_id_number"
    assert r.json()["errors"][0]["field"] == "id_number"
    r = await system.client.post(
        "/visits/residents",
        headers=p.staff,
        json={"household_id": p.household_id, "name": "X", "id_number": ZHAO_ID_NUMBER},
    )
    assert r.status_code == 409 and r.json()["code"] == "resident_exists"


async def test_each_role_sees_only_its_own(system: System) -> None:
    p = await build_place(system)
    s = system
    # Another compound in the same community, not assigned to 常红.
    await p.post("/compounds", p.staff, {"community": "yuntai", "code": "anping", "name": "安平小区"}, 201)
    b = await p.post("/buildings", p.staff, {"compound": "anping", "name": "1号楼"}, 201)
    other, _ = await p.household("101", b["id"], name="钱多多")

    assert (await p.get(f"/households/{p.household_id}", p.worker))["id"] == p.household_id
    r = await s.client.get(f"/visits/households/{other}", headers=p.worker)
    assert r.status_code == 404 and r.json()["code"] == "household_not_found"
    listed = {h["id"] for h in (await p.get("/households", p.worker))["items"]}
    assert p.household_id in listed and other not in listed
    assert {h["id"] for h in (await p.get("/households", p.staff))["items"]} >= {p.household_id, other}
    r = await s.client.post("/visits/visits", headers=p.worker, json={"household_id": other, "outcome": "visited"})
    assert r.status_code == 404

    # A building-level assignment covers that building only.
    w2 = await p.post("/grid-workers", p.staff, {"subject": "gw-2", "name": "孙丽", "community": "yuntai"}, 201)
    await p.post(
        f"/grid-workers/{w2['id']}/assignments",
        p.staff,
        {"compound": "yuntaiyuan", "building_id": p.other_building_id},
        201,
    )
    in_b4, _ = await p.household("601", p.other_building_id)
    w2h = s.auth("grid_worker", sub="gw-2", scopes=())
    assert {h["id"] for h in (await p.get("/households", w2h))["items"]} == {in_b4}
    assert (await s.client.get(f"/visits/households/{p.household_id}", headers=w2h)).status_code == 404

    # Staff of another community see nothing here; an unregistered grid worker is told so.
    nanjie = s.auth("staff", sub="staff-nanjie", scopes=["community:nanjie"])
    assert (await s.client.get(f"/visits/households/{p.household_id}", headers=nanjie)).status_code == 404
    assert (await p.get("/households", nanjie))["items"] == []
    r = await s.client.get("/visits/households", headers=s.auth("grid_worker", sub="nobody", scopes=()))
    assert r.status_code == 403 and r.json()["code"] == "grid_worker_not_registered"
    # Residents are not field staff.
    resident = s.auth("resident", sub="wx-zhao", scopes=())
    assert (await s.client.get("/visits/households", headers=resident)).status_code == 403
    r = await s.client.get("/visits/me/bill", headers=resident)
    assert r.status_code == 404 and r.json()["code"] == "account_not_linked"
    # Typed ID number + phone no longer link (both leak widely); the grid worker's door code does.
    r = await s.client.post(
        "/visits/me/bind", headers=resident, json={"id_number": ZHAO_ID_NUMBER, "phone": "13935201101"}
    )
    assert r.status_code == 410 and r.json()["code"] == "binding_retired"
    assert (await s.client.post(f"/visits/residents/{p.zhao_id}/door-code", headers=nanjie)).status_code == 404
    assert (await s.client.post(f"/visits/residents/{p.zhao_id}/door-code", headers=resident)).status_code == 403
    door = await p.post(f"/residents/{p.zhao_id}/door-code", p.worker, {})
    forged = door["code"][:-3] + ("AAA" if not door["code"].endswith("AAA") else "BBB")
    r = await s.client.post("/visits/me/link", headers=resident, json={"code": forged})
    assert r.status_code == 422 and r.json()["code"] == "door_code_invalid"
    me = await p.post("/me/link", resident, {"code": door["code"]})
    assert me["id"] == p.zhao_id and me["account_linked"] is True
    assert (await p.post("/me/link", resident, {"code": door["code"]}))["id"] == p.zhao_id  # idempotent
    assert (await p.get("/me/bill", resident))["household_id"] == p.household_id
    assert (await p.get(f"/households/{p.household_id}/bill", resident))["members"] == ["赵桂香"]
    assert (await s.client.get(f"/visits/households/{other}/bill", headers=resident)).status_code == 404
    r = await s.client.post(
        "/visits/me/link", headers=s.auth("resident", sub="wx-other", scopes=()), json={"code": door["code"]}
    )
    assert r.status_code == 409 and r.json()["code"] == "account_already_linked"


async def test_outcomes_move_the_schedule_and_overdue_lists_follow(system: System, pinned: list[datetime]) -> None:
    p = await build_place(system)
    h = await p.get(f"/households/{p.household_id}", p.worker)
    today = config.today()
    assert h["tier"] == "elder_alone" and h["cadence_days"] == 7  # 赵: over 80, living alone
    assert h["next_due_on"] == today.isoformat() and not h["overdue"]
    due = await p.get("/due", p.worker)
    assert [x["id"] for x in due["households"]] == [p.household_id]

    visit = {"household_id": p.household_id, "outcome": "not_home"}
    for attempt in (1, 2, 3):
        await p.post("/visits", p.worker, visit, 201)
        h = await p.get(f"/households/{p.household_id}", p.worker)
        assert h["failed_attempts"] == attempt and h["next_due_on"] == (today + timedelta(days=2)).isoformat()
    assert h["attention"] == "unreachable"
    assert [x["id"] for x in (await p.get("/households", p.staff, params={"attention": "unreachable"}))["items"]] == [
        p.household_id
    ]
    assert (await p.get("/due", p.worker))["households"] == []  # the retry is in two days
    assert len((await p.get("/due", p.worker, params={"within_days": 2}))["households"]) == 1

    await p.post("/visits", p.worker, {"household_id": p.household_id, "outcome": "visited", "satisfaction": 4}, 201)
    h = await p.get(f"/households/{p.household_id}", p.worker)
    assert h["failed_attempts"] == 0 and h["attention"] is None and h["last_outcome"] == "visited"
    assert h["next_due_on"] == (today + timedelta(days=7)).isoformat()

    # Ten days later the weekly household is overdue.
    config.pin_clock(datetime.now(UTC) + timedelta(days=10))
    h = await p.get(f"/households/{p.household_id}", p.worker)
    assert h["overdue"] is True
    assert [x["id"] for x in (await p.get("/due", p.worker, params={"overdue_only": True}))["households"]] == [
        p.household_id
    ]
    assert [x["id"] for x in (await p.get("/households", p.worker, params={"overdue": True}))["items"]] == [
        p.household_id
    ]
    cov = await p.get("/coverage", p.staff, params={"by": "worker"})
    assert cov["rows"][0]["name"] == "常红" and cov["rows"][0]["overdue_households"] == 1
    # A refusal while due: try again after the refusal interval.
    await p.post("/visits", p.worker, {"household_id": p.household_id, "outcome": "refused"}, 201)
    h = await p.get(f"/households/{p.household_id}", p.worker)
    assert h["attention"] == "refused" and h["overdue"] is False
    assert h["next_due_on"] == (config.today() + timedelta(days=30)).isoformat()


async def test_visit_input_is_checked_and_retries_are_safe(system: System) -> None:
    p = await build_place(system)
    c = system.client

    async def bad(body: dict[str, object], code: str, field: str) -> None:
        r = await c.post("/visits/visits", headers=p.worker, json={"household_id": p.household_id, **body})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == code and r.json()["errors"][0]["field"] == field

    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    await bad({"outcome": "visited", "visited_at": future}, "visited_at_in_future", "visited_at")
    await bad({"outcome": "visited", "visited_at": "2020-01-01T00:00:00Z"}, "visited_at_too_old", "visited_at")
    await bad({"outcome": "not_home", "satisfaction": 5}, "satisfaction_without_visit", "satisfaction")
    await bad(
        {"outcome": "not_home", "needs": [{"category": "health", "title": "x"}]}, "needs_without_contact", "needs"
    )
    await bad({"outcome": "visited", "latitude": 40.0}, "incomplete_location", "longitude")
    await bad({"outcome": "maybe"}, "validation_error", "outcome")
    r = await c.post(
        "/visits/visits",
        headers=p.worker,
        json={
            "household_id": p.household_id,
            "outcome": "visited",
            "needs": [{"category": "Bad Category", "title": "x"}],
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("needs.0.category")
    assert (await p.get("/visits", p.staff))["items"] == []  # nothing written by any of them

    body = {
        "household_id": p.household_id,
        "outcome": "visited",
        "latitude": 40.02,
        "longitude": 112.7011,
        "needs": [{"category": "mobility_aid", "title": "需要拐杖", "resident_id": p.zhao_id}],
    }
    key = {"Idempotency-Key": "visit-7f3a"}
    first = await c.post("/visits/visits", headers={**p.worker, **key}, json=body)
    again = await c.post("/visits/visits", headers={**p.worker, **key}, json=body)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == first.json()["id"]
    assert first.json()["far_from_home"] is True and first.json()["distance_m"] > 800
    assert len((await p.get("/visits", p.staff))["items"]) == 1
    assert len((await p.get("/needs", p.staff))["items"]) == 1
    r = await c.post("/visits/visits", headers={**p.worker, **key}, json={**body, "outcome": "refused"})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    detail = await p.get(f"/visits/{first.json()['id']}", p.staff)
    assert [n["title"] for n in detail["needs"]] == ["需要拐杖"]
    assert (await p.get("/visits", p.staff, params={"far_from_home": True}))["items"][0]["id"] == first.json()["id"]
    # An empty filter (a form field left blank) does not narrow, as in every list; a wrong one finds nothing.
    assert len((await p.get("/visits", p.staff, params={"community": "", "compound": ""}))["items"]) == 1
    assert (await p.get("/visits", p.staff, params={"community": "elsewhere"}))["items"] == []


async def _need(p: Place) -> dict:  # type: ignore[type-arg]
    v = await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "satisfaction": 5,
            "notes": "腿受伤，几乎走不了路",
            "needs": [
                {
                    "category": "mobility_aid",
                    "title": "需要拐杖 needs a walking stick",
                    "urgency": "high",
                    "resident_id": p.zhao_id,
                }
            ],
        },
        201,
    )
    return v["needs"][0]  # type: ignore[no-any-return]


async def test_the_ledger_closes_needs_one_by_one_into_the_happiness_bill(system: System) -> None:
    p = await build_place(system)
    c = system.client
    need = await _need(p)
    assert need["status"] == "open" and need["owner"] == "gw-changhong" and need["owner_name"] == "常红"
    assert need["due_on"] == (config.today() + timedelta(days=3)).isoformat()
    nid = need["id"]

    r = await c.post(f"/visits/needs/{nid}/confirm", headers=p.worker)
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    assert r.json()["current_status"] == "open" and r.json()["allowed_from"] == ["resolved"]
    await p.post(f"/needs/{nid}/start", p.worker, {"note": "联系社区"})
    r = await c.post(f"/visits/needs/{nid}/resolve", headers=p.worker, json={})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "resolution"
    done = await p.post(f"/needs/{nid}/resolve", p.worker, {"resolution": "社区送来拐杖 walking stick delivered"})
    assert done["status"] == "resolved" and done["resolved_by"] == "gw-changhong"

    # 赵 links her app and says it is not quite done; then confirms.
    resident = system.auth("resident", sub="wx-zhao", scopes=())
    door = await p.post(f"/residents/{p.zhao_id}/door-code", p.worker, {})
    await p.post("/me/link", resident, {"code": door["code"]})
    assert (await p.post(f"/needs/{nid}/reopen", resident, {"reason": "拐杖太高"}))["status"] == "in_progress"
    await p.post(f"/needs/{nid}/resolve", p.worker, {"resolution": "换了一根合适的拐杖"})
    confirmed = await p.post(f"/needs/{nid}/confirm", resident, {"rating": 5, "note": "谢谢"})
    assert confirmed["status"] == "confirmed" and confirmed["closed_via"] == "resident" and confirmed["rating"] == 5
    assert [h["action"] for h in confirmed["history"]] == [
        "raised",
        "started",
        "resolved",
        "reopened",
        "resolved",
        "confirmed",
    ]
    # Somebody else's household's resident cannot touch it.
    stranger = system.auth("resident", sub="wx-stranger", scopes=())
    assert (await c.post(f"/visits/needs/{nid}/confirm", headers=stranger)).status_code == 404

    bill = await p.get("/me/bill", resident)
    assert bill["raised"] == 1 and bill["done"] == 1 and bill["in_progress"] == 0 and bill["visits_count"] == 1
    line = bill["lines"][0]
    assert line["done"] == "换了一根合适的拐杖" and line["done_by"] == "常红" and line["for_resident"] == "赵桂香"
    assert line["confirmed_on"] == config.today().isoformat()
    page = await c.get(f"/visits/households/{p.household_id}/bill.html", headers=p.staff)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "幸福账单" in page.text and "换了一根合适的拐杖" in page.text and "<script" not in page.text
    assert (await p.get(f"/residents/{p.zhao_id}/bill", p.worker))["lines"][0]["need_id"] == nid
    empty = await p.get(
        f"/households/{p.household_id}/bill", p.staff, params={"since": "2020-01-01", "until": "2020-12-31"}
    )
    assert empty["raised"] == 0 and empty["lines"] == []

    # A supervisor closes with a reason; grid workers cannot; owner changes are the supervisor's.
    second = await p.post(
        "/needs", p.worker, {"household_id": p.household_id, "category": "home_repair", "title": "楼道灯坏了"}, 201
    )
    r = await c.post(f"/visits/needs/{second['id']}/close", headers=p.worker, json={"reason": "x"})
    assert r.status_code == 403
    moved = (
        await c.patch(
            f"/visits/needs/{second['id']}", headers=p.staff, json={"owner": "staff-yuntai", "urgency": "high"}
        )
    ).json()
    assert moved["owner"] == "staff-yuntai" and moved["urgency"] == "high"
    closed = await p.post(f"/needs/{second['id']}/close", p.staff, {"reason": "物业已修好 fixed by the management"})
    assert closed["status"] == "closed" and closed["closed_via"] == "supervisor"
    ledger = await p.get("/needs", p.staff, params={"status": ["confirmed", "closed"]})
    assert {n["id"] for n in ledger["items"]} == {nid, second["id"]}
    assert (await p.get("/needs", p.staff, params={"status": "open"}))["items"] == []


async def test_handover_moves_places_needs_and_tasks(system: System) -> None:
    p = await build_place(system)
    need = await _need(p)
    task = await p.post("/tasks", p.staff, {"household_id": p.household_id, "reason": "复查腿伤", "urgent": True}, 201)
    assert task["assigned_worker_id"] == p.worker_id
    w2 = await p.post("/grid-workers", p.staff, {"subject": "gw-sunli", "name": "孙丽", "community": "yuntai"}, 201)
    r = await system.client.post(
        f"/visits/grid-workers/{p.worker_id}/handover", headers=p.worker, json={"to_worker_id": w2["id"]}
    )
    assert r.status_code == 403
    result = await p.post(
        f"/grid-workers/{p.worker_id}/handover", p.staff, {"to_worker_id": w2["id"], "reason": "调岗 transferred"}
    )
    assert result == {"from_worker_id": p.worker_id, "to_worker_id": w2["id"], "assignments": 1, "needs": 1, "tasks": 1}
    successor = system.auth("grid_worker", sub="gw-sunli", scopes=())
    assert (await p.get(f"/households/{p.household_id}", successor))["id"] == p.household_id
    moved = await p.get(f"/needs/{need['id']}", successor)
    assert moved["owner"] == "gw-sunli" and moved["owner_name"] == "孙丽"
    assert moved["history"][-1]["action"] == "handover" and "调岗" in moved["history"][-1]["note"]
    assert (await p.get(f"/tasks/{task['id']}", successor))["assigned_worker_id"] == w2["id"]
    r = await system.client.get(f"/visits/households/{p.household_id}", headers=p.worker)
    assert r.status_code == 403 and r.json()["code"] == "grid_worker_not_registered"  # 常红 left
    ended = (await p.get(f"/grid-workers/{p.worker_id}/assignments", p.staff, params={"include_ended": True}))["items"]
    assert ended[0]["ended_at"] is not None and ended[0]["handed_over_to"] == w2["id"]


async def test_round_progress_and_coverage(system: System) -> None:
    p = await build_place(system)
    h2, _ = await p.household("102", name="李四", birth_date="1990-01-01")
    h3, _ = await p.household("103", name="王五", birth_date="1985-05-05")
    await p.household("104")  # nobody lives there yet: not part of the round
    today = config.today()
    rnd = await p.post(
        "/rounds",
        p.staff,
        {
            "name": "第四季度地毯式走访",
            "community": "yuntai",
            "starts_on": (today - timedelta(days=30)).isoformat(),
            "ends_on": (today + timedelta(days=30)).isoformat(),
        },
        201,
    )
    r = await system.client.post(
        "/visits/rounds", headers=p.staff, json={"name": "x", "starts_on": "2026-01-01", "ends_on": "2026-02-01"}
    )
    assert r.status_code == 403  # a district-wide round is the district's
    need = await _need(p)
    await p.post("/visits", p.worker, {"household_id": h2, "outcome": "visited"}, 201)
    await p.post("/visits", p.worker, {"household_id": h3, "outcome": "not_home"}, 201)
    await p.post(f"/needs/{need['id']}/resolve", p.worker, {"resolution": "拐杖已送到"})
    await p.post(f"/needs/{need['id']}/confirm", p.worker, {"rating": 5})

    progress = await p.get(f"/rounds/{rnd['id']}/progress", p.staff)
    assert (progress["households"], progress["reached"], progress["attempted"]) == (3, 2, 3)
    assert progress["share"] == pytest.approx(2 / 3, abs=1e-3)
    assert [(r["key"], r["reached"]) for r in progress["by_compound"]] == [("yuntaiyuan", 2)]
    assert [(r["name"], r["households"], r["reached"]) for r in progress["by_worker"]] == [("常红", 3, 2)]
    assert (await p.get("/rounds", p.worker))["items"][0]["id"] == rnd["id"]

    for by, key in (("community", "yuntai"), ("compound", "yuntaiyuan"), ("worker", p.worker_id)):
        cov = await p.get("/coverage", p.staff, params={"by": by})
        row = cov["rows"][0]
        assert row["key"] == key and row["households"] == 3 and row["visited"] == 2
        assert row["needs_closed"] == 1 and row["needs_open"] == 0 and row["median_days_to_close"] == 0.0
        assert cov["total"]["visited_share"] == pytest.approx(0.6667, abs=1e-3)
    r = await system.client.get(
        "/visits/coverage", headers=p.staff, params={"since": "2026-12-01", "until": "2026-11-01"}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_period"
    nanjie = system.auth("staff", sub="staff-nanjie", scopes=["community:nanjie"])
    assert (await p.get("/coverage", nanjie))["rows"] == []


async def test_policies_drive_every_households_schedule(system: System) -> None:
    p = await build_place(system)
    young, _ = await p.household("102", name="李四", birth_date="1990-01-01")
    codes = {x["code"]: x["cadence_days"] for x in await p.get("/policies", p.worker)}
    assert codes["standard"] == 90 and codes["elder_alone"] == 7
    r = await system.client.post(
        "/visits/policies", headers=p.staff, json={"code": "x", "name": "x", "cadence_days": 3}
    )
    assert r.status_code == 403
    await p.post("/policies", p.admin, {"code": "monthly-all", "name": "每月一访", "cadence_days": 30}, 201)
    assert (await p.get(f"/households/{young}", p.staff))["tier"] == "monthly-all"
    r = await system.client.patch("/visits/policies/elder_alone", headers=p.admin, json={"cadence_days": 3})
    assert r.status_code == 200 and r.json()["cadence_days"] == 3
    assert (await p.get(f"/households/{p.household_id}", p.staff))["cadence_days"] == 3
    r = await system.client.patch("/visits/policies/monthly-all", headers=p.admin, json={"active": False})
    assert r.status_code == 200
    assert (await p.get(f"/households/{young}", p.staff))["tier"] == "standard"
    # A resident's care tags change the household's tier too.
    await system.client.patch(f"/visits/residents/{p.zhao_id}", headers=p.staff, json={"care_tags": []})
    assert (await p.get(f"/households/{p.household_id}", p.staff))["tier"] == "elderly_80"


async def test_turning_80_moves_the_household_to_the_monthly_tier(system: System, pinned: list[datetime]) -> None:
    from services.visits import jobs

    p = await build_place(system)
    today = config.today()
    turns_80_tomorrow = (today.replace(year=today.year - 80) + timedelta(days=1)).isoformat()
    hid, _ = await p.household("102", name="周大爷", birth_date=turns_80_tomorrow)
    assert (await p.get(f"/households/{hid}", p.staff))["tier"] == "standard"
    assert await jobs.refresh_tiers(system.runtime("visits")) == 0
    config.pin_clock(datetime.now(UTC) + timedelta(days=1))
    assert await jobs.refresh_tiers(system.runtime("visits")) == 1
    h = await p.get(f"/households/{hid}", p.staff)
    assert h["tier"] == "elderly_80" and h["cadence_days"] == 30
    assert await jobs.refresh_tiers(system.runtime("visits")) == 0  # idempotent


async def test_directory_endpoints_paginate_filter_and_refuse_duplicates(system: System) -> None:
    p = await build_place(system)
    c = system.client
    communities = (await p.get("/communities", p.staff))["items"]
    assert [(x["code"], x["compounds"], x["households"]) for x in communities] == [("yuntai", 1, 1)]
    assert (await p.get("/compounds", p.worker))["items"][0]["code"] == "yuntaiyuan"
    assert (await p.get("/compounds/yuntaiyuan", p.worker))["kind"] == "affordable_housing"
    assert {b["name"] for b in (await p.get("/buildings", p.staff, params={"compound": "yuntaiyuan"}))["items"]} == {
        "3号楼",
        "4号楼",
    }
    r = await c.post("/visits/communities", headers=p.admin, json={"code": "yuntai", "name": "dup"})
    assert r.status_code == 409 and r.json()["code"] == "community_exists"
    r = await c.post("/visits/communities", headers=p.admin, json={"code": "Bad Code!", "name": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code"
    r = await c.post(
        "/visits/households", headers=p.staff, json={"building_id": p.building_id, "unit": "2", "room": "501"}
    )
    assert r.status_code == 409 and r.json()["code"] == "household_exists"
    r = await c.post(
        f"/visits/grid-workers/{p.worker_id}/assignments",
        headers=p.staff,
        json={"compound": "yuntaiyuan", "building_id": p.building_id},
    )
    assert r.status_code == 409 and r.json()["code"] == "already_assigned"

    # Pagination: three households, one per page.
    await p.household("102", name="李四", birth_date="1950-02-02", care_tags=["dibao"])
    await p.household("103", name="王五", birth_date="1990-02-02")
    seen, cursor = [], None
    while True:
        page = await p.get("/households", p.worker, params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3
    r = await c.get("/visits/households", headers=p.worker, params={"cursor": "nonsense"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    names = lambda page: sorted(x["name"] for x in page["items"])  # noqa: E731
    assert names(await p.get("/residents", p.staff, params={"care_tag": "dibao"})) == ["李四"]
    assert names(await p.get("/residents", p.staff, params={"min_age": 70})) == ["李四", "赵桂香"]
    assert names(await p.get("/residents", p.staff, params={"mobility": "needs_aid"})) == ["赵桂香"]
    changed = (
        await c.patch(f"/visits/households/{p.household_id}", headers=p.worker, json={"note": "老人耳背，需大声敲门"})
    ).json()
    assert changed["note"] == "老人耳背，需大声敲门" and changed["address"] == "云泰园 3号楼 2单元 501室"

    workers = (await p.get("/grid-workers", p.staff))["items"]
    assert [w["name"] for w in workers] == ["常红"] and workers[0]["phone"] == "139****1111"
    assert (await p.get("/grid-workers/me", p.worker))["id"] == p.worker_id
    task = await p.post("/tasks", p.staff, {"household_id": p.household_id, "reason": "回访"}, 201)
    cancelled = await p.post(f"/tasks/{task['id']}/cancel", p.staff, {"reason": "已电话联系"})
    assert cancelled["status"] == "cancelled"
    assert [t["id"] for t in (await p.get("/tasks", p.staff, params={"status": "cancelled"}))["items"]] == [task["id"]]
    blank = await p.get("/tasks", p.staff, params={"status": "cancelled", "community": ""})
    assert [t["id"] for t in blank["items"]] == [task["id"]]
    [assignment] = (await p.get(f"/grid-workers/{p.worker_id}/assignments", p.staff))["items"]
    await p.post(f"/assignments/{assignment['id']}/end", p.staff)
    assert (await c.get(f"/visits/households/{p.household_id}", headers=p.worker)).status_code == 404


async def test_the_printable_bill_escapes_what_people_typed(system: System) -> None:
    p = await build_place(system)
    await p.post(
        "/needs",
        p.worker,
        {"household_id": p.household_id, "category": "other", "title": "<script>alert(1)</script> & 门锁"},
        201,
    )
    page = await system.client.get(f"/visits/households/{p.household_id}/bill.html", headers=p.worker)
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 门锁" in page.text
    spec = await system.client.get("/visits/openapi.json")
    assert spec.status_code == 200 and "/households/{household_id}/bill.html" in spec.json()["paths"]


def test_a_door_code_expires_and_names_one_resident() -> None:
    import time
    import uuid

    import pytest

    from minsheng.platform.errors import Problem
    from minsheng.settings import Settings
    from services.visits import linking

    settings, resident = Settings(mode="embedded"), uuid.uuid4()
    code, _ = linking.issue(settings, resident)
    assert linking.verify(settings, code) == resident
    stale, _ = linking.issue(settings, resident, now=time.time() - linking.DOOR_CODE_TTL.total_seconds() - 1)
    for bad in (stale, "dc1.", "dc1.!!!!", "nope", code + "A"):
        with pytest.raises(Problem) as problem:
            linking.verify(settings, bad)
        assert problem.value.code == "door_code_invalid"


async def test_a_need_is_never_due_in_the_past(system: System) -> None:
    p = await build_place(system)
    need = {"household_id": p.household_id, "category": "home_repair", "title": "楼道灯坏了"}
    yesterday = (config.today() - timedelta(days=1)).isoformat()
    refused = await p.post("/needs", p.worker, {**need, "due_on": yesterday}, 422)
    assert refused["code"] == "due_on_in_past" and refused["errors"][0]["field"] == "due_on"
    created = await p.post("/needs", p.worker, {**need, "due_on": config.today().isoformat()}, 201)
    r = await system.client.patch(f"/visits/needs/{created['id']}", headers=p.staff, json={"due_on": yesterday})
    assert r.status_code == 422 and r.json()["code"] == "due_on_in_past"
