"""The demo data: the figures from the source text, the story of 常红 and 赵, idempotent and fast."""

from __future__ import annotations

import time

import sqlalchemy as sa

from services.visits.demo import seed_demo
from services.visits.demo_data import ZHAO_HOUSEHOLD, ZHAO_ID
from services.visits.models import Community, Compound, GridWorker, Household, Resident
from tests.support.client import System


async def counts(system: System) -> dict[str, int]:
    out = {}
    async with system.runtime("visits").db.engine.connect() as conn:
        for model in (Community, Compound, Household, Resident, GridWorker):
            table = model.__table__  # type: ignore[attr-defined,union-attr]
            out[table.name] = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
    return out


async def test_demo_data_is_the_county_and_loads_once(system: System) -> None:
    runtime = system.runtime("visits")
    started = time.perf_counter()
    await seed_demo(runtime)
    elapsed = time.perf_counter() - started
    first = await counts(system)
    assert first["communities"] == 7 and first["compounds"] == 89
    assert 2_500 <= first["households"] <= 4_500 and first["residents"] >= 5_000
    assert first["grid_workers"] >= 21
    assert elapsed < 20, f"demo seeding took {elapsed:.1f}s"
    await seed_demo(runtime)
    assert await counts(system) == first

    admin = system.auth("admin", sub="admin")
    communities = (await system.client.get("/visits/communities", headers=admin)).json()["items"]
    assert {c["code"] for c in communities} == {
        "yunxing",
        "dongyan",
        "yuntai",
        "yunhe",
        "gangcheng",
        "xinyuan",
        "nanjie",
    }
    assert sum(c["compounds"] for c in communities) == 89
    compound = (await system.client.get("/visits/compounds/yuntaiyuan", headers=admin)).json()
    assert compound["name"] == "云泰园" and compound["kind"] == "affordable_housing"

    # 常红 sees 赵 (over 80, living alone, weekly visits) in her patch; the walking stick is on the bill.
    changhong = system.auth("grid_worker", sub="gw-changhong", scopes=())
    r = await system.client.get(f"/visits/residents/{ZHAO_ID}", headers=changhong)
    assert r.status_code == 200, r.text
    zhao = r.json()
    assert zhao["name"] == "赵桂香" and zhao["age"] >= 80 and zhao["care_tags"] == ["living_alone"]
    household = (await system.client.get(f"/visits/households/{ZHAO_HOUSEHOLD}", headers=changhong)).json()
    assert household["compound"] == "yuntaiyuan" and household["tier"] == "elder_alone"
    bill = (await system.client.get(f"/visits/households/{ZHAO_HOUSEHOLD}/bill", headers=changhong)).json()
    assert bill["lines"][0]["done_by"] == "常红" and "拐杖" in bill["lines"][0]["done"]

    coverage = (await system.client.get("/visits/coverage", headers=admin, params={"by": "community"})).json()
    assert len(coverage["rows"]) == 7 and 0.3 < coverage["total"]["visited_share"] <= 1
    assert coverage["total"]["households"] == first["households"]
    due = (await system.client.get("/visits/due", headers=changhong)).json()
    me = (await system.client.get("/visits/grid-workers/me", headers=changhong)).json()
    patch = (await system.client.get(f"/visits/grid-workers/{me['id']}/assignments", headers=admin)).json()["items"]
    assert "yuntaiyuan" in {a["compound"] for a in patch}
    assert due["households"] and {h["compound"] for h in due["households"]} <= {a["compound"] for a in patch}
