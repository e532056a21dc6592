"""Redemption at alliance merchants: one-time codes, atomic debit, Idempotency-Key, stock and per-rider
limits, voids within the window, settlement statements, and what merchants may (not) see."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from services.points import config
from services.points.models import RedemptionCode
from tests.points.helpers import balance, code, credit, merchant, offer, published, rider, rider_at_an_offer, staff
from tests.support.client import System

REDEEM = "/points/merchant-api/redemptions"


async def test_redeem_debits_once_and_merchant_never_sees_the_rider(points: System) -> None:
    fan, m, o = await rider_at_an_offer(points, 100, points_cost=30, stock=5)
    issued = (await points.client.post("/points/redemption-codes", headers=fan.headers)).json()
    assert len(issued["code"]) == 8 and issued["qr_payload"].endswith(issued["code"]) and issued["balance"] == 100

    body = {"code": issued["qr_payload"], "offer_id": o["id"]}
    r = await points.client.post(REDEEM, auth=m.auth, json=body, headers={"Idempotency-Key": "till1-0001"})
    assert r.status_code == 201, r.text
    red = r.json()
    assert red["points"] == 30 and red["status"] == "completed" and red["rider_ref"].startswith("r_")
    text = r.text
    for private in (fan.id, "樊伟明", "13812345678", "138****5678", "rider-fan"):
        assert private not in text
    assert await balance(points, fan) == 70

    # The same key again (a till retrying after a timeout): the first answer, no second debit.
    again = await points.client.post(REDEEM, auth=m.auth, json=body, headers={"Idempotency-Key": "till1-0001"})
    assert again.status_code == 201 and again.json() == red and again.headers["Idempotent-Replayed"] == "true"
    # The same key with another body is an error, not a second redemption.
    other = await points.client.post(
        REDEEM, auth=m.auth, json={**body, "quantity": 2}, headers={"Idempotency-Key": "till1-0001"}
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # A new key cannot reuse the code.
    reuse = await points.client.post(REDEEM, auth=m.auth, json=body, headers={"Idempotency-Key": "till1-0002"})
    assert reuse.status_code == 422 and reuse.json()["code"] == "invalid_code"
    assert await balance(points, fan) == 70

    statement = (await points.client.get("/points/riders/me/statement", headers=fan.headers)).json()["items"]
    assert [(e["kind"], e["amount"], e["cause_type"]) for e in statement][:1] == [("redeemed", -30, "redemption")]
    mine = (await points.client.get("/points/redemptions", headers=fan.headers)).json()["items"]
    assert mine[0]["merchant_name"] == "港城刀削面" and mine[0]["offer_title"] == "刀削面一碗"
    offers = (await points.client.get(f"/points/offers/{o['id']}", headers=fan.headers)).json()
    assert offers["stock_remaining"] == 4
    posted = await published(points, "minsheng.points.ledger.posted.v1")
    assert [p["kind"] for p in posted] == ["adjusted", "redeemed"]


async def test_idempotency_key_is_required(points: System) -> None:
    fan = await rider(points)
    m = await merchant(points)
    o = await offer(points, m)
    r = await points.client.post(REDEEM, auth=m.auth, json={"code": await code(points, fan), "offer_id": o["id"]})
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"


async def test_insufficient_points_leaves_everything_untouched(points: System) -> None:
    fan, m, o = await rider_at_an_offer(points, 20, points_cost=30, stock=1)
    c = await code(points, fan)
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": o["id"]}, headers={"Idempotency-Key": "k1"}
    )
    assert r.status_code == 409 and r.json()["code"] == "insufficient_points" and r.json()["balance"] == 20
    assert await balance(points, fan) == 20
    stock = (await points.client.get(f"/points/offers/{o['id']}", headers=fan.headers)).json()["stock_remaining"]
    assert stock == 1
    # The code was not spent by the failed attempt: after a top-up it still works.
    await credit(points, fan.id, 10)
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": o["id"]}, headers={"Idempotency-Key": "k2"}
    )
    assert r.status_code == 201, r.text
    assert await balance(points, fan) == 0


async def test_expired_code_and_other_merchants_offer(points: System) -> None:
    fan = await rider(points)
    await credit(points, fan.id, 100)
    m = await merchant(points)
    other = await merchant(points, name="新苑洗衣店")
    theirs = await offer(points, other, title="洗衣立减 8 元", kind="discount", discount_yuan="8.00", points_cost=40)
    c = await code(points, fan)
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": theirs["id"]}, headers={"Idempotency-Key": "x1"}
    )
    assert r.status_code == 404 and r.json()["code"] == "offer_not_found"
    db = points.runtime("points").db
    async with db.engine.begin() as conn:
        await conn.execute(sa.update(table_of(RedemptionCode)).values(expires_at=utcnow() - timedelta(seconds=1)))
    mine = await offer(points, m)
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": mine["id"]}, headers={"Idempotency-Key": "x2"}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_code"
    assert await balance(points, fan) == 100


async def test_code_bound_to_an_offer_and_unverified_riders(points: System) -> None:
    fan = await rider(points)
    await credit(points, fan.id, 100)
    m = await merchant(points)
    a, b = await offer(points, m, title="A"), await offer(points, m, title="B")
    c = await code(points, fan, a["id"])
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": b["id"]}, headers={"Idempotency-Key": "b1"}
    )
    assert r.status_code == 422 and r.json()["code"] == "code_offer_mismatch"
    newbie = await rider(points, "rider-new", verify=False)
    r = await points.client.post("/points/redemption-codes", headers=newbie.headers)
    assert r.status_code == 403 and r.json()["code"] == "rider_not_verified"
    with config.override(max_active_codes=2):
        await code(points, fan)
        r = await points.client.post("/points/redemption-codes", headers=fan.headers)
        assert r.status_code == 409 and r.json()["code"] == "too_many_codes"


async def test_stock_and_per_rider_limit(points: System) -> None:
    fan, wu = await rider(points), await rider(points, "rider-wu", name="吴强", phone="13700000000")
    for who in (fan, wu):
        await credit(points, who.id, 500)
    m = await merchant(points)
    o = await offer(points, m, points_cost=10, stock=3, per_rider_limit=2)
    results = []
    for i, who in enumerate([fan, fan, fan, wu, wu]):
        r = await points.client.post(
            REDEEM,
            auth=m.auth,
            json={"code": await code(points, who), "offer_id": o["id"]},
            headers={"Idempotency-Key": f"s{i}"},
        )
        results.append(r.json().get("code") if r.status_code != 201 else "ok")
    assert results == ["ok", "ok", "rider_limit_reached", "ok", "out_of_stock"]
    assert await balance(points, fan) == 480 and await balance(points, wu) == 490
    listed = (await points.client.get("/points/offers", headers=fan.headers)).json()["items"]
    assert o["id"] not in [x["id"] for x in listed]  # sold out: not offered any more
    restock = await points.client.patch(f"/points/merchant-api/offers/{o['id']}", auth=m.auth, json={"add_stock": 5})
    assert restock.status_code == 200 and restock.json()["stock_remaining"] == 5
    too_much = await points.client.patch(f"/points/merchant-api/offers/{o['id']}", auth=m.auth, json={"add_stock": -6})
    assert too_much.status_code == 409 and too_much.json()["code"] == "stock_below_zero"


async def test_void_within_window_returns_points_and_stock_once(points: System) -> None:
    fan, m, o = await rider_at_an_offer(points, 100, points_cost=25, stock=10)
    red = (
        await points.client.post(
            REDEEM,
            auth=m.auth,
            json={"code": await code(points, fan), "offer_id": o["id"], "quantity": 2},
            headers={"Idempotency-Key": "v1"},
        )
    ).json()
    assert red["points"] == 50 and await balance(points, fan) == 50
    r = await points.client.post(f"{REDEEM}/{red['id']}/void", auth=m.auth, json={"reason": "wrong item"})
    assert r.status_code == 200 and r.json()["status"] == "voided" and r.json()["void_reason"] == "wrong item"
    again = await points.client.post(f"{REDEEM}/{red['id']}/void", auth=m.auth)
    assert again.status_code == 200 and again.json()["status"] == "voided"
    assert await balance(points, fan) == 100
    assert (await points.client.get(f"/points/offers/{o['id']}", headers=fan.headers)).json()["stock_remaining"] == 10
    kinds = [
        e["kind"] for e in (await points.client.get("/points/riders/me/statement", headers=fan.headers)).json()["items"]
    ]
    assert kinds == ["voided", "redeemed", "adjusted"]

    # Another merchant cannot see or void it.
    other = await merchant(points, name="新苑洗衣店")
    assert (await points.client.get(f"{REDEEM}/{red['id']}", auth=other.auth)).status_code == 404
    assert (await points.client.post(f"{REDEEM}/{red['id']}/void", auth=other.auth)).status_code == 404


async def test_void_after_window_is_refused(points: System) -> None:
    fan = await rider(points)
    await credit(points, fan.id, 100)
    m = await merchant(points, void_window_minutes=0)
    o = await offer(points, m)
    red = (
        await points.client.post(
            REDEEM,
            auth=m.auth,
            json={"code": await code(points, fan), "offer_id": o["id"]},
            headers={"Idempotency-Key": "w1"},
        )
    ).json()
    r = await points.client.post(f"{REDEEM}/{red['id']}/void", auth=m.auth)
    assert r.status_code == 409 and r.json()["code"] == "void_window_passed"
    assert await balance(points, fan) == 70


async def test_monthly_statement_json_and_csv(points: System) -> None:
    fan = await rider(points)
    await credit(points, fan.id, 1000)
    m = await merchant(points)
    goods = await offer(points, m, points_cost=30)
    discount = await offer(points, m, title="理发立减 10 元", kind="discount", discount_yuan="10.00", points_cost=50)
    ids = []
    for i, o in enumerate([goods, discount, discount]):
        r = await points.client.post(
            REDEEM,
            auth=m.auth,
            json={"code": await code(points, fan), "offer_id": o["id"]},
            headers={"Idempotency-Key": f"m{i}"},
        )
        ids.append(r.json()["id"])
    await points.client.post(f"{REDEEM}/{ids[2]}/void", auth=m.auth)
    month = config.get().local_month(utcnow()).strftime("%Y-%m")
    r = await points.client.get(f"/points/merchant-api/statements/{month}", auth=m.auth)
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["redemptions"], s["voided"], s["points"], s["discount_yuan"]) == (2, 1, 80, "10.00")
    r = await points.client.get(f"/points/merchant-api/statements/{month}?format=csv", auth=m.auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("redemption_id,created_at_local") and len(lines) == 1 + 3 + 1
    assert "理发立减 10 元" in r.content.decode("utf-8-sig") and "13812345678" not in lines[1]
    assert lines[-1].split(",")[6:8] == ["80", "10.00"]
    staff_view = await points.client.get(f"/points/merchants/{m.id}/statements/{month}", headers=staff(points))
    assert staff_view.json()["points"] == 80
    bad = await points.client.get("/points/merchant-api/statements/2026-13", auth=m.auth)
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    merchant_list = (await points.client.get("/points/merchant-api/redemptions?status=voided", auth=m.auth)).json()
    assert [x["id"] for x in merchant_list["items"]] == [ids[2]] and "rider_id" not in merchant_list["items"][0]
    audit = (await points.client.get(f"/points/merchants/{m.id}/redemptions?limit=2", headers=staff(points))).json()
    assert [x["id"] for x in audit["items"]] == ids[::-1][:2] and audit["items"][0]["rider_id"] == fan.id
    rest = (
        await points.client.get(
            f"/points/merchants/{m.id}/redemptions?limit=2&cursor={audit['next_cursor']}", headers=staff(points)
        )
    ).json()
    assert [x["id"] for x in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert (
        await points.client.get(f"/points/merchants/{m.id}/redemptions", headers=staff(points, "yunxing"))
    ).status_code == 404


async def test_bad_input_is_problem_json(points: System) -> None:
    fan = await rider(points)
    m = await merchant(points)
    r = await points.client.post(
        "/points/merchant-api/offers", auth=m.auth, json={"title": "x", "kind": "discount", "points_cost": 10}
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": "1", "offer_id": "nope"}, headers={"Idempotency-Key": "z"}
    )
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"code", "offer_id"}
    r = await points.client.get("/points/offers?cursor=%%%", headers=fan.headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"


async def test_rider_suspended_after_getting_a_code_cannot_redeem(points: System) -> None:
    fan, m, o = await rider_at_an_offer(points, 100)
    c = await code(points, fan)
    await points.client.post(f"/points/riders/{fan.id}/suspend", headers=staff(points), json={"reason": "abuse"})
    r = await points.client.post(
        REDEEM, auth=m.auth, json={"code": c, "offer_id": o["id"]}, headers={"Idempotency-Key": "s1"}
    )
    assert r.status_code == 409 and r.json()["code"] == "rider_not_eligible"
    assert "abuse" not in r.text  # the merchant learns nothing about why
    assert await balance(points, fan) == 100
