"""Ledger properties of the points service.

- A Hypothesis state machine over earn / redeem / void / replay / expire, through the service's own API (the
  merchant API signed, the rider's codes) and its ledger: after every step the balance equals the sum of the
  rider's entries, equals the model's balance, and is never negative. ``MINSHENG_LEDGER_EXAMPLES`` /
  ``MINSHENG_LEDGER_STEPS`` run it longer.
- On PostgreSQL: 200 simultaneous redemptions against one balance never overdraw; one Idempotency-Key sent
  50 times at once has one effect; the same key with another body → 422.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from minsheng.platform import ratelimit
from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from services.points import config, expiry, ledger
from services.points.models import LedgerEntry, Redemption, RiderBalance
from tests.conftest import alone_on_postgres, embedded_settings
from tests.points.helpers import MerchantRef, RiderRef, code, merchant, offer, rider, rider_at_an_offer
from tests.support.client import System, running_system
from tests.support.reliability import env_int, percentile, record, reproducible

REDEEM = "/points/merchant-api/redemptions"
UNLIMITED = {"merchant_rate_per_second": 0, "rider_rate_per_second": 0, "max_active_codes": 10_000, "daily_earn_cap": 0}
EXAMPLES = env_int("MINSHENG_LEDGER_EXAMPLES", 30)
STEPS = env_int("MINSHENG_LEDGER_STEPS", 30)
CONCURRENT = env_int("MINSHENG_LEDGER_CONCURRENT_REDEMPTIONS", 200)

ENTRIES: sa.Table = table_of(LedgerEntry)
BALANCES: sa.Table = table_of(RiderBalance)
REDEMPTIONS: sa.Table = table_of(Redemption)


@pytest.fixture
def unlimited() -> Iterator[None]:
    ratelimit.BUCKETS.clear()
    with config.override(**UNLIMITED):
        yield
    ratelimit.BUCKETS.clear()


@pytest.fixture
async def points_only(tmp_path: Path, unlimited: None) -> AsyncIterator[System]:
    async with running_system(embedded_settings(tmp_path), services=("points",)) as s:
        yield s


@pytest.fixture
async def pg_points_only(tmp_path: Path, pg_base_url: str, unlimited: None) -> AsyncIterator[System]:
    async with alone_on_postgres(tmp_path, pg_base_url, "points") as s:
        yield s


async def ledger_of(s: System, rider_id: str) -> tuple[int, int]:
    """(balance, sum of the rider's entries), read from the database."""
    async with s.runtime("points").db.engine.connect() as conn:
        total = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.amount), 0)).where(
                    ENTRIES.c.rider_id == uuid.UUID(rider_id)
                )
            )
        ).scalar_one()
        balance = (
            await conn.execute(sa.select(BALANCES.c.balance).where(BALANCES.c.rider_id == uuid.UUID(rider_id)))
        ).scalar_one()
    return int(balance), int(total)


# --- the state machine ------------------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """One rider per run; a shared merchant with offers of several prices. The model is the expected balance."""

    system: System
    loop: asyncio.AbstractEventLoop
    shop: MerchantRef
    offers: list[dict[str, Any]]
    counter = 0
    stats: dict[str, int] = {}

    redemptions = Bundle("redemptions")
    earnings = Bundle("earnings")

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    @initialize()
    def new_rider(self) -> None:
        LedgerMachine.counter += 1
        self.rider: RiderRef = self.call(
            rider(self.system, sub=f"ledger-{LedgerMachine.counter}", phone=f"137{LedgerMachine.counter:08d}")
        )
        self.model = 0
        self.voided: set[str] = set()
        self.expiry_day = 0

    @rule(target=earnings, amount=st.integers(min_value=1, max_value=120))
    def earn(self, amount: int) -> tuple[str, int]:
        cause = str(uuid.uuid4())
        self.call(self._earn(cause, amount))
        self.model += amount
        self.count("earn")
        return cause, amount

    async def _earn(self, cause: str, amount: int) -> ledger.Earning:
        async with self.system.runtime("points").uow() as uow:
            result = await ledger.earn(
                uow,
                rider_id=uuid.UUID(self.rider.id),
                amount=amount,
                cause_type="test",
                cause_id=cause,
                event_id=None,
                note="state machine",
            )
            await uow.commit()
        return result

    @rule(earning=earnings)
    def replay_earn(self, earning: tuple[str, int]) -> None:
        result = self.call(self._earn(*earning))
        assert result.duplicate and result.amount == 0, "the same cause earns once"
        self.count("replay_earn")

    @rule(target=redemptions, which=st.integers(min_value=0, max_value=2), quantity=st.integers(1, 3))
    def redeem(self, which: int, quantity: int) -> dict[str, Any]:
        chosen = self.offers[which]
        cost = chosen["points_cost"] * quantity
        the_code = self.call(code(self.system, self.rider))
        body = {"code": the_code, "offer_id": chosen["id"], "quantity": quantity}
        key = str(uuid.uuid4())
        r = self.call(self.system.client.post(REDEEM, auth=self.shop.auth, json=body, headers={"Idempotency-Key": key}))
        if cost <= self.model:
            assert r.status_code == 201, r.text
            self.model -= cost
            self.count("redeem")
            return {"key": key, "body": body, "response": r.json(), "points": cost}
        assert r.status_code == 409 and r.json()["code"] == "insufficient_points", r.text
        self.count("redeem_refused")
        return {"key": key, "body": body, "response": None, "points": 0}

    @rule(redemption=redemptions)
    def replay_redeem(self, redemption: dict[str, Any]) -> None:
        r = self.call(
            self.system.client.post(
                REDEEM, auth=self.shop.auth, json=redemption["body"], headers={"Idempotency-Key": redemption["key"]}
            )
        )
        if redemption["response"] is None:
            # The refusal was not stored (nothing happened); the code is still unused, so a retry is judged
            # afresh against today's balance.
            assert r.status_code in (201, 409), r.text
            if r.status_code == 201:
                self.model -= int(r.json()["points"])
                redemption["response"], redemption["points"] = r.json(), int(r.json()["points"])
            self.count("replay_refused_redeem")
            return
        assert r.status_code == 201 and r.json()["id"] == redemption["response"]["id"], r.text
        assert r.headers.get("Idempotent-Replayed") == "true"
        self.count("replay_redeem")

    @rule(redemption=redemptions)
    def void(self, redemption: dict[str, Any]) -> None:
        if redemption["response"] is None:
            return
        rid = redemption["response"]["id"]
        r = self.call(
            self.system.client.post(f"{REDEEM}/{rid}/void", auth=self.shop.auth, json={"reason": "state machine"})
        )
        assert r.status_code == 200 and r.json()["status"] == "voided", r.text
        if rid not in self.voided:  # voiding twice gives nothing back twice
            self.voided.add(rid)
            self.model += redemption["points"]
        self.count("void")

    @rule(roll=st.integers(min_value=0, max_value=4))
    def expire(self, roll: int) -> None:
        if roll != 3:  # the expiry job runs now and then, not at every step
            return
        self.expiry_day += 1
        now = utcnow() + timedelta(days=config.get().expiry_days + 30 + self.expiry_day)
        self.call(self._expire(now))
        self.model = 0  # every credit is older than the cutoff then: all that is unspent expires
        self.count("expire")

    async def _expire(self, now: Any) -> None:
        async with self.system.runtime("points").uow() as uow:
            await expiry.expire_points(uow, now=now, batch=10_000)
            await uow.commit()

    @invariant()
    def balance_is_the_sum_of_entries_and_never_negative(self) -> None:
        if not hasattr(self, "rider"):
            return
        balance, total = self.call(ledger_of(self.system, self.rider.id))
        assert balance == total, f"balance {balance} != sum of entries {total}"
        assert balance >= 0
        assert balance == self.model, f"balance {balance} != model {self.model}"


async def test_ledger_state_machine(points_only: System) -> None:
    s = points_only
    LedgerMachine.system = s
    LedgerMachine.loop = asyncio.get_running_loop()
    LedgerMachine.shop = await merchant(s)
    LedgerMachine.offers = [await offer(s, LedgerMachine.shop, title=f"offer {c}", points_cost=c) for c in (7, 30, 95)]
    LedgerMachine.stats = {}
    began = time.monotonic()
    await asyncio.to_thread(
        run_state_machine_as_test,
        LedgerMachine,
        settings=reproducible(EXAMPLES, stateful_step_count=STEPS),
    )
    record(
        "ledger_state_machine",
        {
            "runs": EXAMPLES,
            "max_steps_per_run": STEPS,
            "riders": LedgerMachine.counter,
            "steps_by_rule": LedgerMachine.stats,
            "invariant_violations": 0,
            "seconds": round(time.monotonic() - began, 1),
        },
    )
    assert LedgerMachine.stats.get("redeem", 0) > 0 and LedgerMachine.stats.get("void", 0) > 0
    assert LedgerMachine.stats.get("expire", 0) > 0 and LedgerMachine.stats.get("replay_redeem", 0) > 0


# --- PostgreSQL: concurrency and idempotency ------------------------------------------------------------------------


@pytest.mark.integration
async def test_concurrent_redemptions_never_overdraw_and_one_key_has_one_effect(pg_points_only: System) -> None:
    s = pg_points_only
    start_balance = 1000
    fan, shop, item = await rider_at_an_offer(s, start_balance, points_cost=30)
    codes = [await code(s, fan) for _ in range(CONCURRENT)]
    latencies: list[float] = []

    async def redeem(i: int) -> tuple[int, dict[str, Any]]:
        began = time.monotonic()
        r = await s.client.post(
            REDEEM,
            auth=shop.auth,
            json={"code": codes[i], "offer_id": item["id"]},
            headers={"Idempotency-Key": f"till-{i}"},
        )
        latencies.append(time.monotonic() - began)
        return r.status_code, r.json()

    began = time.monotonic()
    results = await asyncio.gather(*(redeem(i) for i in range(CONCURRENT)))
    took = time.monotonic() - began
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    balance, total = await ledger_of(s, fan.id)
    async with s.runtime("points").db.engine.connect() as conn:
        redeemed = int((await conn.execute(sa.select(sa.func.count()).select_from(REDEMPTIONS))).scalar_one())
    wins = start_balance // 30

    # One key, fifty copies at once: one redemption, one debit; every copy answers with it.
    item2 = await offer(s, shop, title="another", points_cost=1)
    the_code = await code(s, fan)
    body = {"code": the_code, "offer_id": item2["id"]}
    copies = await asyncio.gather(
        *(
            s.client.post(REDEEM, auth=shop.auth, json=body, headers={"Idempotency-Key": "receipt-0001"})
            for _ in range(50)
        )
    )
    copy_statuses = sorted({r.status_code for r in copies})
    copy_ids = {r.json().get("id") for r in copies if r.status_code == 201}
    after_copies, total_after_copies = await ledger_of(s, fan.id)
    other = await s.client.post(
        REDEEM, auth=shop.auth, json={**body, "quantity": 2}, headers={"Idempotency-Key": "receipt-0001"}
    )

    record(
        "points_concurrency",
        {
            "concurrent_redemptions": CONCURRENT,
            "start_balance": start_balance,
            "points_cost": 30,
            "responses": statuses,
            "expected_winners": wins,
            "redemptions_stored": redeemed,
            "balance_after": balance,
            "sum_of_entries": total,
            "never_negative": balance >= 0,
            "seconds": round(took, 2),
            "latency_ms_p50": round(percentile(latencies, 50) * 1000, 1),
            "latency_ms_p99": round(percentile(latencies, 99) * 1000, 1),
            "same_key_copies": 50,
            "same_key_statuses": copy_statuses,
            "same_key_distinct_redemptions": len(copy_ids),
            "same_key_points_debited": balance - after_copies,
            "same_key_other_body_status": other.status_code,
            "same_key_other_body_code": other.json().get("code"),
        },
    )
    assert statuses == {201: wins, 409: CONCURRENT - wins}, statuses
    assert all(body["code"] == "insufficient_points" for status, body in results if status == 409)
    assert balance == total == start_balance - wins * 30 and balance >= 0
    assert redeemed == wins
    assert copy_statuses == [201], [r.text for r in copies if r.status_code != 201][:3]
    assert len(copy_ids) == 1, "fifty copies of one key: one redemption"
    assert balance - after_copies == 1 and after_copies == total_after_copies, "one debit of 1 point"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
