"""A relative links their app account to a diner with the one-time code canteen staff or the grid worker
handed over: one use, expiry, an attempt limit, audited, published for notify; nobody else can use it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.canteen.linking import FAMILY_CODE_TTL, MAX_FAILURES
from services.canteen.models import FamilyCode, FamilyLinkAudit
from tests.canteen.helpers import TODAY, canteen_staff, make_canteen, make_diner, outbox, pin, resident
from tests.support.client import System

SON = {"name": "赵军", "relation": "son", "can_order": True, "can_pay": False}


async def _issue(s: System, diner_id: str, headers: dict[str, str]) -> dict[str, str]:
    r = await s.client.post(f"/canteen/diners/{diner_id}/family-codes", headers=headers, json=SON)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _redeem(s: System, code: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return await s.client.post("/canteen/me/family-links", headers=headers, json={"code": code})


async def test_a_relative_links_once_with_the_code_and_then_sees_the_diner(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], subject="wx-zhao", compound="yuntaiyuan")
    son, stranger = resident(s, "wx-son"), resident(s, "wx-stranger")
    grid_worker = s.auth("grid_worker", sub="gw-li", scopes=["compound:yuntaiyuan"])

    # Who may issue: the diner's canteen staff and grid worker; not another canteen's staff, not the family.
    other_canteen = canteen_staff(s, "nanjie")
    r = await s.client.post(f"/canteen/diners/{zhao['id']}/family-codes", headers=other_canteen, json=SON)
    assert r.status_code == 404
    r = await s.client.post(f"/canteen/diners/{zhao['id']}/family-codes", headers=resident(s, "wx-zhao"), json=SON)
    assert r.status_code == 403
    other_gw = s.auth("grid_worker", sub="gw-wang", scopes=["compound:nanyuan"])
    r = await s.client.post(f"/canteen/diners/{zhao['id']}/family-codes", headers=other_gw, json=SON)
    assert r.status_code == 404
    issued = await _issue(s, zhao["id"], grid_worker)
    assert issued["diner_id"] == zhao["id"] and len(issued["code"]) == 14  # XXXX-XXXX-XXXX

    # The code is stored only as a keyed hash.
    async with s.runtime("canteen").db.engine.connect() as conn:
        stored = (await conn.execute(sa.select(FamilyCode.__table__))).mappings().one()  # type: ignore[attr-defined]
    assert issued["code"].replace("-", "") not in " ".join(str(v) for v in stored.values())

    assert (await s.client.get("/canteen/me/diners", headers=son)).json() == []
    r = await _redeem(s, issued["code"].lower().replace("-", " "), son)  # typed by hand: case and spaces do not matter
    assert r.status_code == 200, r.text
    assert r.json()["id"] == zhao["id"] and [m["subject"] for m in r.json()["family"]] == ["wx-son"]
    mine = (await s.client.get("/canteen/me/diners", headers=son)).json()
    assert [d["id"] for d in mine] == [zhao["id"]] and mine[0]["family"][0]["can_pay"] is False
    assert (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=son)).status_code == 200

    # A retry by the same account answers the same link; anyone else gets the same answer as a forged code.
    assert (await _redeem(s, issued["code"], son)).status_code == 200
    r = await _redeem(s, issued["code"], stranger)
    assert r.status_code == 422 and r.json()["code"] == "family_code_invalid"
    assert (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=stranger)).status_code == 404

    linked = await outbox(s, "minsheng.canteen.diner.family_linked.v1")
    assert len(linked) == 1
    assert linked[0]["account_id"] == "wx-son" and linked[0]["method"] == "door_code"
    assert linked[0]["diner_id"] == zhao["id"] and linked[0]["member_id"] == mine[0]["family"][0]["id"]

    async with s.runtime("canteen").db.engine.connect() as conn:
        t = FamilyLinkAudit.__table__  # type: ignore[attr-defined]
        trail = (await conn.execute(sa.select(t.c.subject, t.c.action).order_by(t.c.at, t.c.id))).all()
    assert [tuple(row) for row in trail] == [("gw-li", "issued"), ("wx-son", "linked"), ("wx-stranger", "failed")]


async def test_codes_expire_the_elder_cannot_be_their_own_family_and_guessing_is_stopped(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], subject="wx-zhao")
    staff = canteen_staff(s)
    first = await _issue(s, zhao["id"], staff)
    second = await _issue(s, zhao["id"], staff)

    r = await _redeem(s, second["code"], resident(s, "wx-zhao"))
    assert r.status_code == 409 and r.json()["code"] == "family_member_is_diner"

    pin(TODAY + FAMILY_CODE_TTL + timedelta(days=1), 8)
    r = await _redeem(s, first["code"], resident(s, "wx-daughter"))
    assert r.status_code == 422 and r.json()["code"] == "family_code_invalid"

    # Guessing: after MAX_FAILURES wrong codes the account is refused, even a right code, until the window passes.
    pin(TODAY, 9)
    guesser = resident(s, "wx-guesser")
    fresh = await _issue(s, zhao["id"], staff)
    for n in range(MAX_FAILURES):
        r = await _redeem(s, f"ABCD-EFGH-JK{n:02d}", guesser)
        assert r.status_code == 422 and r.json()["code"] == "family_code_invalid"
    r = await _redeem(s, fresh["code"], guesser)
    assert r.status_code == 429 and r.json()["code"] == "family_code_attempts"
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    # Another account is not held up by the guesser.
    assert (await _redeem(s, fresh["code"], resident(s, "wx-daughter"))).status_code == 200
    pin(TODAY, 9, 16)
    r = await _redeem(s, fresh["code"], guesser)
    assert r.status_code == 422  # allowed to try again, but the code went to the daughter


@pytest.mark.integration
async def test_family_codes_on_postgres(pg_canteen: System) -> None:
    """The same, on PostgreSQL (the code row locked while it is redeemed)."""
    await test_a_relative_links_once_with_the_code_and_then_sees_the_diner(pg_canteen)


@pytest.mark.integration
async def test_two_accounts_redeeming_one_code_at_once_on_postgres(pg_canteen: System) -> None:
    s = pg_canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], subject="wx-zhao")
    issued = await _issue(s, zhao["id"], canteen_staff(s))
    a, b = await asyncio.gather(
        _redeem(s, issued["code"], resident(s, "wx-son")), _redeem(s, issued["code"], resident(s, "wx-daughter"))
    )
    assert sorted([a.status_code, b.status_code]) == [200, 422]
    family = (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=canteen_staff(s))).json()["family"]
    assert len(family) == 1
