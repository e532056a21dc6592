"""Building a small place through the visits API: one community, a compound, buildings, a household with
赵 (over 80, living alone), grid worker 常红 assigned to the compound, and a staff member of the community."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.visits import idcard
from tests.support.client import System

ZHAO_ID_NUMBER = idcard.make("140226", date(1941, 3, 8), 25)


@dataclass
class Place:
    system: System
    admin: dict[str, str]
    staff: dict[str, str]
    worker: dict[str, str]
    worker_id: str
    compound: str
    building_id: str
    other_building_id: str
    household_id: str
    zhao_id: str
    ids: dict[str, Any] = field(default_factory=dict)

    async def post(self, path: str, headers: dict[str, str], json: Any = None, status: int = 200, **kw: Any) -> Any:
        r = await self.system.client.post(f"/visits{path}", headers=headers, json=json, **kw)
        assert r.status_code == status, r.text
        return r.json()

    async def get(self, path: str, headers: dict[str, str], status: int = 200, **kw: Any) -> Any:
        r = await self.system.client.get(f"/visits{path}", headers=headers, **kw)
        assert r.status_code == status, r.text
        return r.json()

    async def household(self, room: str, building_id: str | None = None, **resident: Any) -> tuple[str, str | None]:
        h = await self.post(
            "/households", self.staff, {"building_id": building_id or self.building_id, "unit": "1", "room": room}, 201
        )
        rid = None
        if resident:
            rid = (await self.post("/residents", self.staff, {"household_id": h["id"], **resident}, 201))["id"]
        return h["id"], rid


async def build_place(
    system: System, community: str = "yuntai", compound: str = "yuntaiyuan", *, worker_sub: str = "gw-changhong"
) -> Place:
    admin = system.auth("admin", sub="admin-1")
    staff = system.auth("staff", sub=f"staff-{community}", scopes=[f"community:{community}"])
    client = system.client

    async def post(path: str, headers: dict[str, str], body: Any) -> Any:
        r = await client.post(f"/visits{path}", headers=headers, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    await post("/communities", admin, {"code": community, "name": "云泰社区"})
    await post(
        "/compounds", staff, {"community": community, "code": compound, "name": "云泰园", "kind": "affordable_housing"}
    )
    b3 = await post(
        "/buildings", staff, {"compound": compound, "name": "3号楼", "latitude": 40.0121, "longitude": 112.7011}
    )
    b4 = await post("/buildings", staff, {"compound": compound, "name": "4号楼"})
    h = await post("/households", staff, {"building_id": b3["id"], "unit": "2", "room": "501"})
    zhao = await post(
        "/residents",
        staff,
        {
            "household_id": h["id"],
            "name": "赵桂香",
            "gender": "F",
            "care_tags": ["living_alone"],
            "mobility": "needs_aid",
            "phone": "13935201101",
            "id_number": ZHAO_ID_NUMBER,
            "health_notes": "左腿受伤，行走困难",
        },
    )
    w = await post(
        "/grid-workers",
        staff,
        {"subject": worker_sub, "name": "常红", "community": community, "phone": "13900001111"},
    )
    await post(f"/grid-workers/{w['id']}/assignments", staff, {"compound": compound})
    worker = system.auth("grid_worker", sub=worker_sub, scopes=())
    return Place(system, admin, staff, worker, w["id"], compound, b3["id"], b4["id"], h["id"], zhao["id"])
