"""Helpers for the points tests: riders, staff, merchants with signed clients, injected events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.envelope import CloudEvent, wrap
from services.points.client import MerchantAuth
from tests.support.client import System
from tests.unit import test_fire_flow as unit_fire

FIRE = {**unit_fire.FIRE, "community": "gangcheng", "compound": "juyuan"}  # the same fire, in gangcheng


def staff(system: System, community: str = "gangcheng", sub: str = "staff-1") -> dict[str, str]:
    return system.auth("staff", sub=sub, scopes=[f"community:{community}"])


def admin(system: System) -> dict[str, str]:
    return system.auth("admin", sub="admin-1", scopes=["*"])


@dataclass
class RiderRef:
    id: str
    headers: dict[str, str]


async def rider(
    system: System,
    sub: str = "rider-fan",
    *,
    community: str = "gangcheng",
    verify: bool = True,
    name: str = "樊伟明",
    phone: str = "13812345678",
) -> RiderRef:
    headers = system.auth("rider", sub=sub, scopes=())
    r = await system.client.post(
        "/points/riders",
        headers=headers,
        json={"name": name, "platform": "meituan", "phone": phone, "community": community},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    if verify:
        v = await system.client.post(f"/points/riders/{rid}/verify", headers=staff(system, community))
        assert v.status_code == 200, v.text
    return RiderRef(rid, headers)


async def red_team(system: System, leader: RiderRef, name: str = "港城红骑士1队") -> dict[str, Any]:
    """The leader made a red rider by staff, then a Gangcheng team led by them: the team."""
    h = staff(system)
    await system.client.patch(f"/points/riders/{leader.id}", headers=h, json={"role": "red"})
    r = await system.client.post(
        "/points/teams", headers=h, json={"name": name, "community": "gangcheng", "leader_rider_id": leader.id}
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def credit(system: System, rider_id: str, amount: int, community: str = "gangcheng") -> None:
    r = await system.client.post(
        f"/points/riders/{rider_id}/adjustments",
        headers=staff(system, community),
        json={"amount": amount, "reason": "test credit"},
    )
    assert r.status_code == 201, r.text


async def balance(system: System, who: RiderRef) -> int:
    r = await system.client.get("/points/riders/me/balance", headers=who.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["balance"])


@dataclass
class MerchantRef:
    id: str
    key_id: str
    secret: str

    @property
    def auth(self) -> MerchantAuth:
        return MerchantAuth(self.key_id, self.secret)


async def merchant(system: System, name: str = "港城刀削面", community: str = "gangcheng", **extra: Any) -> MerchantRef:
    h = staff(system, community)
    r = await system.client.post(
        "/points/merchants",
        headers=h,
        json={"name": name, "category": "restaurant", "community": community, "contact_phone": "13900001111", **extra},
    )
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    c = await system.client.post(f"/points/merchants/{mid}/credentials", headers=h, json={"label": "till 1"})
    assert c.status_code == 201, c.text
    return MerchantRef(mid, c.json()["key_id"], c.json()["secret"])


async def offer(system: System, m: MerchantRef, **fields: Any) -> dict[str, Any]:
    body = {"title": "刀削面一碗", "kind": "goods", "points_cost": 30, **fields}
    r = await system.client.post("/points/merchant-api/offers", auth=m.auth, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def rider_at_an_offer(
    system: System, points: int = 100, **offer_fields: Any
) -> tuple[RiderRef, MerchantRef, dict[str, Any]]:
    """A rider credited ``points``, a merchant with a till and one of its offers (``offer_fields``)."""
    fan = await rider(system)
    await credit(system, fan.id, points)
    m = await merchant(system)
    return fan, m, await offer(system, m, **offer_fields)


async def code(system: System, who: RiderRef, offer_id: str | None = None) -> str:
    r = await system.client.post(
        "/points/redemption-codes", headers=who.headers, json={"offer_id": offer_id} if offer_id else None
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def envelope_message(event: IntegrationEvent, service: str) -> tuple[CloudEvent, OutgoingMessage]:
    env = wrap(event, service=service)
    return env, OutgoingMessage(
        event.topic,
        env.partitionkey,
        env.model_dump_json(exclude_none=True).encode(),
        [("ce_type", env.type.encode()), ("ce_id", str(env.id).encode())],
    )


async def deliver(system: System, event: IntegrationEvent, service: str, *, times: int = 1) -> CloudEvent:
    """Publish another service's event on the bus (``times`` > 1: the same envelope redelivered)."""
    env, msg = envelope_message(event, service)
    for _ in range(times):
        await system.bus.publish([msg])
        await system.settle()
    return env


async def published(system: System, event_type: str) -> list[dict[str, Any]]:
    """The ``data`` of every event of this type the points service wrote to its outbox."""
    db = system.runtime("points").db
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.payload).where(t.c.type == event_type).order_by(t.c.id))).all()
    return [json.loads(r.payload)["data"] for r in rows]


async def upload_photo(system: System, headers: dict[str, str], data: bytes | None = None) -> str:
    """A photo uploaded as wx.uploadFile sends it; its id."""
    from tests.support.photos import phone_jpeg

    r = await system.client.post(
        "/points/photos", headers=headers, files={"file": ("wx.jpg", data or phone_jpeg(), "image/jpeg")}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]
