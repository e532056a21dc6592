"""Many simultaneous redemptions against one balance on PostgreSQL: the balance never goes negative, each
Idempotency-Key has exactly one effect, and a code is spent once however many tills race for it."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from minsheng.platform.sql import table_of
from services.points import config
from services.points.models import LedgerEntry, Redemption, RiderBalance
from tests.points.helpers import balance, code, rider_at_an_offer
from tests.support.client import System

pytestmark = pytest.mark.integration

REDEEM = "/points/merchant-api/redemptions"
UNLIMITED = {"merchant_rate_per_second": 0, "rider_rate_per_second": 0, "max_active_codes": 100}


async def _ledger_total(system: System, rider_id: str) -> tuple[int, int, int]:
    db = system.runtime("points").db
    entries, balances = table_of(LedgerEntry), table_of(RiderBalance)
    redemptions = table_of(Redemption)
    async with db.engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.sum(entries.c.amount)))).scalar_one()
        bal = (await conn.execute(sa.select(balances.c.balance))).scalar_one()
        count = (await conn.execute(sa.select(sa.func.count()).select_from(redemptions))).scalar_one()
    return int(total), int(bal), int(count)


async def test_simultaneous_redemptions_never_overdraw(pg_points: System) -> None:
    s = pg_points
    with config.override(**UNLIMITED):
        fan, m, o = await rider_at_an_offer(s, points_cost=30)
        codes = [await code(s, fan) for _ in range(12)]

        async def redeem(i: int) -> tuple[int, dict]:  # type: ignore[type-arg]
            r = await s.client.post(
                REDEEM,
                auth=m.auth,
                json={"code": codes[i], "offer_id": o["id"]},
                headers={"Idempotency-Key": f"till-{i}"},
            )
            return r.status_code, r.json()

        # Every request twice, all at once: twelve keys, twenty-four requests.
        results = await asyncio.gather(*(redeem(i) for i in list(range(12)) * 2))

    by_key: dict[int, list[tuple[int, dict]]] = {}  # type: ignore[type-arg]
    for i, result in zip(list(range(12)) * 2, results, strict=True):
        by_key.setdefault(i, []).append(result)
    won = [i for i, rs in by_key.items() if any(status == 201 for status, _ in rs)]
    assert len(won) == 3, results  # 100 points buy three 30-point items
    for i in won:  # both copies of a winning key answer with the same redemption
        (s1, b1), (s2, b2) = by_key[i]
        assert s1 == s2 == 201 and b1["id"] == b2["id"], by_key[i]
    for i, rs in by_key.items():
        if i not in won:
            assert all(status == 409 and body["code"] == "insufficient_points" for status, body in rs), rs
    assert await balance(s, fan) == 10
    total, bal, count = await _ledger_total(s, fan.id)
    assert (total, bal, count) == (10, 10, 3)


async def test_one_code_many_tills_one_effect(pg_points: System) -> None:
    s = pg_points
    with config.override(**UNLIMITED):
        fan, m, o = await rider_at_an_offer(s, points_cost=10, stock=100)
        c = await code(s, fan)
        responses = await asyncio.gather(
            *(
                s.client.post(
                    REDEEM, auth=m.auth, json={"code": c, "offer_id": o["id"]}, headers={"Idempotency-Key": f"k{i}"}
                )
                for i in range(10)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [422] * 9, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"invalid_code"}
    assert await balance(s, fan) == 90
    assert (await s.client.get(f"/points/offers/{o['id']}", headers=fan.headers)).json()["stock_remaining"] == 99
