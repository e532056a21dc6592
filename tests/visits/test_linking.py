"""A resident's app account links by its WeChat-verified phone plus the grid worker's confirmation (nothing is
linked before), and every link — door code too — is published so notify knows who is behind the resident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa

from minsheng.contracts.identity import AccountContactChanged
from services.notify.models import RecordLink
from services.visits.models import AccountPhone
from tests.support.client import System
from tests.visits.helpers import build_place


async def _phone_verified(s: System, account: str, phone: str | None) -> None:
    """identity tells the services an account's verified phone (as after POST /identity/wechat/phone)."""
    from minsheng.platform.bus.base import OutgoingMessage
    from minsheng.platform.envelope import wrap

    event = AccountContactChanged(account_id=account, occurred_at=datetime.now(UTC), phone=phone)  # type: ignore[arg-type]
    envelope = wrap(event, service="identity")
    await s.bus.publish(
        [OutgoingMessage(event.topic, envelope.partitionkey, envelope.model_dump_json(exclude_none=True).encode())]
    )
    await s.settle()


async def _outbox(s: System, event_type: str) -> list[dict[str, Any]]:
    t = s.runtime("visits").db.tables.outbox
    async with s.runtime("visits").db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.payload).where(t.c.type == event_type).order_by(t.c.id))).all()
    return [json.loads(r.payload)["data"] for r in rows]


async def _notify_links(s: System) -> set[tuple[str, str, str]]:
    t = RecordLink.__table__  # type: ignore[attr-defined]
    async with s.runtime("notify").db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.record, t.c.record_id, t.c.account_id))).all()
    return {tuple(r) for r in rows}  # type: ignore[misc]


async def test_a_verified_phone_links_only_once_the_grid_worker_confirms(system: System) -> None:
    s = system
    p = await build_place(system)
    zhao_account, daughter_account = str(uuid4()), str(uuid4())
    zhao, daughter = (
        s.auth("resident", sub=zhao_account, scopes=()),
        s.auth("resident", sub=daughter_account, scopes=()),
    )

    r = await s.client.post("/visits/me/link-requests", headers=zhao)
    assert r.status_code == 409 and r.json()["code"] == "phone_not_verified"
    await _phone_verified(s, zhao_account, "13800009999")
    r = await s.client.post("/visits/me/link-requests", headers=zhao)
    assert r.status_code == 404 and r.json()["code"] == "no_resident_for_phone"

    # The phone is kept sealed: masked, encrypted, keyed hash; never in clear.
    await _phone_verified(s, zhao_account, "13935201101")
    async with s.runtime("visits").db.engine.connect() as conn:
        row = (await conn.execute(sa.select(AccountPhone.__table__))).mappings().one()  # type: ignore[attr-defined]
    assert row["phone"] == "139****1101" and "13935201101" not in " ".join(str(v) for v in row.values())

    # The daughter shares her mother's phone: her request matches too, and the grid worker rejects it.
    await _phone_verified(s, daughter_account, "13935201101")
    asked = await p.post("/me/link-requests", daughter)
    assert [a["status"] for a in asked] == ["pending"] and "resident_id" not in asked[0]
    mine = await p.post("/me/link-requests", zhao)
    assert len(mine) == 1 and mine[0]["status"] == "pending"
    assert (await p.post("/me/link-requests", zhao))[0]["id"] == mine[0]["id"]  # asking again: the same request
    r = await s.client.get("/visits/me", headers=zhao)
    assert r.status_code == 404 and r.json()["code"] == "account_not_linked"  # nothing linked before confirmation

    pending = (await p.get("/link-requests", p.worker))["items"]
    assert {(x["account_subject"], x["resident_name"]) for x in pending} == {
        (zhao_account, "赵桂香"),
        (daughter_account, "赵桂香"),
    }
    await p.post(f"/link-requests/{asked[0]['id']}/reject", p.worker, {"reason": "her daughter, not her"})

    # BOLA: residents, another community's staff and a grid worker of another building cannot decide.
    request = mine[0]["id"]
    r = await s.client.post(f"/visits/link-requests/{request}/confirm", headers=daughter)
    assert r.status_code == 403
    nanjie = s.auth("staff", sub="staff-nanjie", scopes=["community:nanjie"])
    assert (await s.client.post(f"/visits/link-requests/{request}/confirm", headers=nanjie)).status_code == 404
    assert (await p.get("/link-requests", nanjie))["items"] == []
    w2 = await p.post("/grid-workers", p.staff, {"subject": "gw-2", "name": "孙丽", "community": "yuntai"}, 201)
    await p.post(
        f"/grid-workers/{w2['id']}/assignments",
        p.staff,
        {"compound": p.compound, "building_id": p.other_building_id},
        201,
    )
    other_worker = s.auth("grid_worker", sub="gw-2", scopes=())
    assert (await s.client.post(f"/visits/link-requests/{request}/confirm", headers=other_worker)).status_code == 404
    assert (await p.get("/link-requests", other_worker))["items"] == []
    assert (await s.client.get("/visits/me", headers=zhao)).status_code == 404

    done = await p.post(f"/link-requests/{request}/confirm", p.worker)
    assert done["status"] == "confirmed" and done["resident_id"] == p.zhao_id
    assert (await p.get("/me", zhao))["id"] == p.zhao_id
    assert (await p.post(f"/link-requests/{request}/confirm", p.worker))["status"] == "confirmed"  # retried
    r = await s.client.post(f"/visits/link-requests/{request}/reject", headers=p.worker)
    assert r.status_code == 409 and r.json()["code"] == "link_request_decided"
    assert [x["status"] for x in await p.get("/me/link-requests", daughter)] == ["rejected"]
    assert (await s.client.get("/visits/me", headers=daughter)).status_code == 404

    linked = await _outbox(s, "minsheng.visits.resident.account_linked.v1")
    assert [(e["resident_id"], e["account_id"], e["method"], e["confirmed_by"]) for e in linked] == [
        (p.zhao_id, zhao_account, "verified_phone", "gw-changhong")
    ]
    await s.settle()
    assert ("visits.resident", p.zhao_id, zhao_account) in await _notify_links(s)


async def test_a_changed_phone_is_not_confirmed_and_a_door_code_link_is_published(system: System) -> None:
    s = system
    p = await build_place(system)
    account = str(uuid4())
    resident = s.auth("resident", sub=account, scopes=())
    await _phone_verified(s, account, "13935201101")
    [asked] = await p.post("/me/link-requests", resident)
    await _phone_verified(s, account, "13811112222")  # the number went to someone else meanwhile
    r = await s.client.post(f"/visits/link-requests/{asked['id']}/confirm", headers=p.worker)
    assert r.status_code == 409 and r.json()["code"] == "phone_changed"
    await _phone_verified(s, account, None)
    async with s.runtime("visits").db.engine.connect() as conn:
        phones = AccountPhone.__table__  # type: ignore[attr-defined]
        assert (await conn.execute(sa.select(sa.func.count()).select_from(phones))).scalar() == 0

    door = await p.post(f"/residents/{p.zhao_id}/door-code", p.worker, {})
    assert (await p.post("/me/link", resident, {"code": door["code"]}))["id"] == p.zhao_id
    await p.post("/me/link", resident, {"code": door["code"]})  # again: no second event
    linked = await _outbox(s, "minsheng.visits.resident.account_linked.v1")
    assert [(e["account_id"], e["method"]) for e in linked] == [(account, "door_code")]
    await s.settle()
    assert ("visits.resident", p.zhao_id, account) in await _notify_links(s)


@pytest.mark.integration
async def test_linking_by_verified_phone_on_postgres(pg_system: System) -> None:
    await test_a_verified_phone_links_only_once_the_grid_worker_confirms(pg_system)
