"""Demo data: 31 red riders leading 320 yellow ones, the task list, merchants with offers; idempotent, and
the documented demo key signs requests."""

from __future__ import annotations

import sqlalchemy as sa

from minsheng.platform.sql import table_of
from services.points.demo import DEMO_KEY_ID, DEMO_SECRET, seed_demo
from services.points.models import Merchant, Offer, Rider, TaskType, Team
from tests.support.client import System


async def _counts(system: System) -> dict[str, int]:
    db = system.runtime("points").db
    riders = table_of(Rider)
    out: dict[str, int] = {}
    async with db.engine.connect() as conn:
        for role in ("red", "yellow", "blue"):
            out[role] = (await conn.execute(sa.select(sa.func.count()).where(riders.c.role == role))).scalar_one()
        for name, model in (("teams", Team), ("types", TaskType), ("merchants", Merchant), ("offers", Offer)):
            out[name] = (await conn.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()
        distinct = sa.select(sa.func.count(sa.distinct(riders.c.community)))
        out["communities"] = (await conn.execute(distinct)).scalar_one()
    return out


async def test_seed_demo_twice(points: System) -> None:
    runtime = points.runtime("points")
    await seed_demo(runtime)
    first = await _counts(points)
    assert first == {
        "red": 31,
        "yellow": 320,
        "blue": 20,
        "teams": 31,
        "types": 8,
        "merchants": 5,
        "offers": 6,
        "communities": 7,
    }
    await seed_demo(runtime)
    assert await _counts(points) == first
    staff = points.auth("staff", scopes=["community:gangcheng"])
    board = (await points.client.get("/points/leaderboards/team?community=gangcheng", headers=staff)).json()
    assert len(board["items"]) >= 4 and all(i["points"] > 0 for i in board["items"])
    offers = (await points.client.get("/points/offers", headers=staff)).json()["items"]
    assert len(offers) == 6
    from services.points.client import MerchantAuth

    me = await points.client.get("/points/merchant-api/me", auth=MerchantAuth(DEMO_KEY_ID, DEMO_SECRET))
    assert me.status_code == 200 and me.json()["name"] == "云兴街老王理发"


async def test_openapi_documents_the_merchant_signature_headers(points: System) -> None:
    spec = (await points.client.get("/points/openapi.json")).json()
    redeem = spec["paths"]["/merchant-api/redemptions"]["post"]
    names = {p["name"] for p in redeem["parameters"]}
    assert {
        "Idempotency-Key",
        "X-Minsheng-Key-Id",
        "X-Minsheng-Timestamp",
        "X-Minsheng-Nonce",
        "X-Minsheng-Signature",
    } <= names
    assert "/riders/me/balance" in spec["paths"] and "/leaderboards/{by}" in spec["paths"]
