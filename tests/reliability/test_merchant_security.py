"""Merchant request signatures and rate limits, as figures: every forged request is refused with 401 and has
no effect; a merchant or a rider going too fast gets 429 with Retry-After. (The points service's own tests
check each case in detail; this one counts them over many attempts for the README table.)"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minsheng.platform import ratelimit
from services.points import config
from services.points.client import signed_headers
from tests.conftest import embedded_settings
from tests.points.helpers import balance, code, credit, merchant, offer, rider, rider_at_an_offer
from tests.support.client import System, running_system
from tests.support.reliability import record

REDEEM = "/points/merchant-api/redemptions"
ATTEMPTS = 20


@pytest.fixture
async def points_system(tmp_path: Path) -> AsyncIterator[System]:
    ratelimit.BUCKETS.clear()
    with config.override(max_active_codes=10_000):
        async with running_system(embedded_settings(tmp_path), services=("points",)) as s:
            yield s
    ratelimit.BUCKETS.clear()


async def test_forged_merchant_requests_are_refused_and_fast_callers_are_limited(points_system: System) -> None:
    s = points_system
    fan, shop, item = await rider_at_an_offer(s, 10_000, points_cost=10)
    start = await balance(s, fan)

    async def send(body: dict[str, Any], headers: dict[str, str], raw: bytes | None = None) -> tuple[int, str]:
        content = raw if raw is not None else json.dumps(body).encode()
        r = await s.client.post(
            REDEEM,
            content=content,
            headers={**headers, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        )
        return r.status_code, (r.json().get("code", "") if r.content else "")

    def signed(body: bytes, **kw: Any) -> dict[str, str]:
        return signed_headers(shop.key_id, shop.secret, "POST", REDEEM, body, **kw)

    outcomes: dict[str, dict[str, int]] = {}

    def tally(case: str, status: int, problem: str) -> None:
        outcomes.setdefault(case, {}).setdefault(f"{status} {problem}", 0)
        outcomes[case][f"{status} {problem}"] += 1

    with config.override(rider_rate_per_second=0, merchant_rate_per_second=0):  # the limits come next
        for _ in range(ATTEMPTS):
            body = {"code": await code(s, fan), "offer_id": item["id"]}
            raw = json.dumps(body).encode()
            tally("stale timestamp (10 min old)", *await send(body, signed(raw, timestamp=int(time.time()) - 600)))
            tally("future timestamp (10 min ahead)", *await send(body, signed(raw, timestamp=int(time.time()) + 600)))
            tampered = json.dumps({**body, "quantity": 5}).encode()
            tally("tampered body", *await send(body, signed(raw), raw=tampered))
            unknown = signed_headers("mk_" + secrets.token_hex(8), shop.secret, "POST", REDEEM, raw)
            tally("unknown key", *await send(body, unknown))
            wrong = signed_headers(shop.key_id, "msk_" + secrets.token_hex(16), "POST", REDEEM, raw)
            tally("wrong secret", *await send(body, wrong))
            tally("no signature", *await send(body, {}))
            nonce = secrets.token_urlsafe(12)
            first = await send(body, signed(raw, nonce=nonce))
            assert first[0] == 201, first
            other = {"code": await code(s, fan), "offer_id": item["id"]}
            other_raw = json.dumps(other).encode()
            tally("reused nonce", *await send(other, signed(other_raw, nonce=nonce)))

    spent = start - await balance(s, fan)
    forged = {case: counts for case, counts in outcomes.items()}
    refused_401 = sum(n for counts in forged.values() for k, n in counts.items() if k.startswith("401"))
    accepted = sum(n for counts in forged.values() for k, n in counts.items() if k.startswith("2"))

    # Rate limits (token buckets: the configured burst, then a steady rate): a till looping, a rider's app
    # looping. The refill is slowed to one token in 1,000 s here, so that what is checked is the burst and the
    # refusals after it, however long a loaded machine takes to send the requests.
    ratelimit.BUCKETS.clear()
    merchant_statuses: dict[int, int] = {}
    retry_after: set[str] = set()
    rider_statuses: dict[int, int] = {}
    rider_retry_after: set[str] = set()
    with config.override(merchant_rate_per_second=0.001, rider_rate_per_second=0.001) as settings:
        for _ in range(settings.merchant_burst + 20):
            r = await s.client.get("/points/merchant-api/me", auth=shop.auth)
            merchant_statuses[r.status_code] = merchant_statuses.get(r.status_code, 0) + 1
            if r.status_code == 429:
                retry_after.add(r.headers.get("Retry-After", ""))
        for _ in range(settings.rider_burst + 10):
            r = await s.client.post("/points/redemption-codes", headers=fan.headers)
            rider_statuses[r.status_code] = rider_statuses.get(r.status_code, 0) + 1
            if r.status_code == 429:
                rider_retry_after.add(r.headers.get("Retry-After", ""))

    record(
        "merchant_security",
        {
            "attempts_per_case": ATTEMPTS,
            "forged_requests": sum(sum(c.values()) for c in forged.values()),
            "refused_401": refused_401,
            "accepted": accepted,
            "outcomes": forged,
            "points_spent_by_the_genuine_requests_only": spent,
            "genuine_redemptions": ATTEMPTS,
            "merchant_rate": {
                "burst": settings.merchant_burst,
                "per_second": settings.merchant_rate_per_second,
                "responses": merchant_statuses,
                "retry_after": sorted(retry_after),
            },
            "rider_rate": {
                "burst": settings.rider_burst,
                "per_second": settings.rider_rate_per_second,
                "responses": rider_statuses,
                "retry_after": sorted(rider_retry_after),
            },
        },
    )
    assert accepted == 0 and refused_401 == sum(sum(c.values()) for c in forged.values())
    assert set(forged["stale timestamp (10 min old)"]) == {"401 signature_expired"}
    assert set(forged["future timestamp (10 min ahead)"]) == {"401 signature_expired"}
    assert set(forged["tampered body"]) == {"401 signature_invalid"}
    assert set(forged["unknown key"]) == {"401 unknown_key"}
    assert set(forged["wrong secret"]) == {"401 signature_invalid"}
    assert set(forged["no signature"]) == {"401 signature_missing"}
    assert set(forged["reused nonce"]) == {"401 nonce_reused"}
    assert spent == ATTEMPTS * 10, "only the genuine redemptions moved points"
    assert merchant_statuses == {200: settings.merchant_burst, 429: 20}
    assert retry_after and all(v.isdigit() and int(v) >= 1 for v in retry_after)
    assert rider_statuses == {201: settings.rider_burst, 429: 10}
    assert rider_retry_after and all(v.isdigit() and int(v) >= 1 for v in rider_retry_after)


async def test_a_merchant_cannot_touch_another_merchants_offers_or_redemptions(points_system: System) -> None:
    s = points_system
    fan = await rider(s)
    await credit(s, fan.id, 1000)
    shop, other = await merchant(s), await merchant(s, name="另一家")
    item = await offer(s, shop, points_cost=10, stock=5)
    r = await s.client.post(
        REDEEM,
        auth=shop.auth,
        json={"code": await code(s, fan), "offer_id": item["id"]},
        headers={"Idempotency-Key": "shop-1"},
    )
    assert r.status_code == 201, r.text
    redemption = r.json()
    before = await balance(s, fan)

    attempts = {
        "read the redemption": await s.client.get(f"{REDEEM}/{redemption['id']}", auth=other.auth),
        "void the redemption": await s.client.post(
            f"{REDEEM}/{redemption['id']}/void", auth=other.auth, json={"reason": "not mine"}
        ),
        "change the offer": await s.client.patch(
            f"/points/merchant-api/offers/{item['id']}", auth=other.auth, json={"points_cost": 1}
        ),
        "redeem on the offer": await s.client.post(
            REDEEM,
            auth=other.auth,
            headers={"Idempotency-Key": "other-1"},
            json={"code": await code(s, fan), "offer_id": item["id"]},
        ),
    }
    listed = (await s.client.get(REDEEM, auth=other.auth)).json()["items"]
    statement = (await s.client.get("/points/merchant-api/statements/2026-11", auth=other.auth)).json()
    after = await balance(s, fan)
    still = (await s.client.get(f"{REDEEM}/{redemption['id']}", auth=shop.auth)).json()
    record(
        "merchant_isolation",
        {
            "attempts": {k: v.status_code for k, v in attempts.items()},
            "other_merchant_lists": len(listed),
            "balance_moved": before - after,
            "redemption_status": still["status"],
        },
    )
    assert {k: v.status_code for k, v in attempts.items()} == dict.fromkeys(attempts, 404)
    assert listed == [] and after == before and still["status"] == "completed"
    assert (
        item["points_cost"] == 10
        and (await s.client.get(f"/points/offers/{item['id']}", headers=fan.headers)).json()["points_cost"] == 10
    )
    assert not any(str(redemption["id"]) in str(v) for v in statement.values())
