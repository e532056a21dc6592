"""Signed merchant requests: a good signature passes; replayed, stale, tampered, wrong-key and revoked ones
answer 401 with a stable code; a merchant over its rate gets 429 with Retry-After."""

from __future__ import annotations

import json
import time

from services.points import config
from services.points.client import signed_headers
from services.points.signing import canonical_request, sign
from tests.points.helpers import merchant, staff
from tests.support.client import System

PATH = "/points/merchant-api/me"


async def test_signed_request_passes_and_merchant_sees_itself(points: System) -> None:
    m = await merchant(points)
    r = await points.client.get(PATH, auth=m.auth)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == m.id and r.json()["contact_phone"] == "139****1111"


async def test_replayed_request_is_rejected(points: System) -> None:
    m = await merchant(points)
    headers = signed_headers(m.key_id, m.secret, "GET", PATH)
    assert (await points.client.get(PATH, headers=headers)).status_code == 200
    again = await points.client.get(PATH, headers=headers)
    assert again.status_code == 401 and again.json()["code"] == "nonce_reused"
    assert again.headers["content-type"] == "application/problem+json"


async def test_stale_and_future_timestamps_are_rejected(points: System) -> None:
    m = await merchant(points)
    window = config.get().signature_window_seconds
    for skew in (-window - 5, window + 5):
        headers = signed_headers(m.key_id, m.secret, "GET", PATH, timestamp=int(time.time()) + skew)
        r = await points.client.get(PATH, headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "signature_expired", r.text
    # Inside the window a skewed clock is fine.
    ok = signed_headers(m.key_id, m.secret, "GET", PATH, timestamp=int(time.time()) - window + 30)
    assert (await points.client.get(PATH, headers=ok)).status_code == 200


async def test_tampered_body_path_query_or_method_is_rejected(points: System) -> None:
    m = await merchant(points)
    body = json.dumps({"title": "面", "kind": "goods", "points_cost": 30}).encode()
    path = "/points/merchant-api/offers"
    headers = {**signed_headers(m.key_id, m.secret, "POST", path, body), "content-type": "application/json"}
    tampered = body.replace(b"30", b"1")
    r = await points.client.post(path, content=tampered, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"

    signed_for_other_path = signed_headers(m.key_id, m.secret, "GET", "/points/merchant-api/offers")
    r = await points.client.get(PATH, headers=signed_for_other_path)
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"

    signed_query = signed_headers(m.key_id, m.secret, "GET", "/points/merchant-api/redemptions?limit=5")
    r = await points.client.get("/points/merchant-api/redemptions?limit=50", headers=signed_query)
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"

    signed_get = signed_headers(m.key_id, m.secret, "GET", path, body)
    r = await points.client.post(path, content=body, headers={**signed_get, "content-type": "application/json"})
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"
    # Nothing was written by any of them.
    assert (await points.client.get(path, auth=m.auth)).json()["items"] == []


async def test_wrong_secret_unknown_key_revoked_key_and_missing_headers(points: System) -> None:
    m = await merchant(points)
    other = await merchant(points, name="新苑洗衣店")
    r = await points.client.get(PATH, headers=signed_headers(m.key_id, other.secret, "GET", PATH))
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"
    r = await points.client.get(PATH, headers=signed_headers("mk_nope", m.secret, "GET", PATH))
    assert r.status_code == 401 and r.json()["code"] == "unknown_key"
    r = await points.client.get(PATH)
    assert r.status_code == 401 and r.json()["code"] == "signature_missing"
    bad_nonce = signed_headers(m.key_id, m.secret, "GET", PATH, nonce="short")
    r = await points.client.get(PATH, headers=bad_nonce)
    assert r.status_code == 401 and r.json()["code"] == "signature_invalid"

    revoked = await points.client.delete(f"/points/merchants/{m.id}/credentials/{m.key_id}", headers=staff(points))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    r = await points.client.get(PATH, auth=m.auth)
    assert r.status_code == 401 and r.json()["code"] == "unknown_key"


async def test_suspended_merchant_is_forbidden(points: System) -> None:
    m = await merchant(points)
    r = await points.client.patch(f"/points/merchants/{m.id}", headers=staff(points), json={"status": "suspended"})
    assert r.status_code == 200
    r = await points.client.get(PATH, auth=m.auth)
    assert r.status_code == 403 and r.json()["code"] == "merchant_suspended"


async def test_secret_is_shown_once_and_listed_without_it(points: System) -> None:
    m = await merchant(points)
    creds = (await points.client.get(f"/points/merchants/{m.id}/credentials", headers=staff(points))).json()
    assert [c["key_id"] for c in creds] == [m.key_id]
    assert "secret" not in creds[0] and creds[0]["last_used_at"] is None
    await points.client.get(PATH, auth=m.auth)
    creds = (await points.client.get(f"/points/merchants/{m.id}/credentials", headers=staff(points))).json()
    assert creds[0]["last_used_at"] is not None


async def test_merchant_rate_limit_answers_429_with_retry_after(points: System) -> None:
    m = await merchant(points)
    with config.override(merchant_rate_per_second=0.001, merchant_burst=3):  # no refill while the test runs
        codes = [(await points.client.get(PATH, auth=m.auth)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await points.client.get(PATH, auth=m.auth)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        # Another merchant has its own bucket.
        other = await merchant(points, name="东延路便民超市")
        assert (await points.client.get(PATH, auth=other.auth)).status_code == 200


def test_documented_signing_example() -> None:
    """The worked example in docs/points.md (Python and openssl give the same signature)."""
    body = b'{"code":"48213907","offer_id":"0193a000-0000-7000-8000-0000000000a1","quantity":1}'
    args = ("POST", "/points/merchant-api/redemptions", "1764236400", "n-8f3a2c1e9b7d", body)
    assert canonical_request(*args).decode() == (
        "POST\n/points/merchant-api/redemptions\n1764236400\nn-8f3a2c1e9b7d\n"
        "166087fd4a37ef9c3a1b478231c9cc75aa3e592d0104af40eaa2f0a0a5d7f479"
    )
    assert sign("msk_demo_only_not_a_real_secret", *args) == (
        "20d782af74a27f640225913377975438c2924f0a1f1a9ece786e2c782467d804"
    )
