"""Diners: registration in scope, personal data encrypted at rest and masked, audited reads, family access."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from minsheng.platform.inputs import RefuseNulMiddleware
from minsheng.platform.sql import table_of
from services.canteen.models import Diner, plausible_birth
from tests.canteen.helpers import (
    TODAY,
    canteen_staff,
    community_staff,
    county,
    id_number,
    make_canteen,
    make_diner,
    pin,
    resident,
)
from tests.support.client import System

DINERS = table_of(Diner)


async def test_personal_data_is_encrypted_masked_and_every_read_is_logged(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    number = id_number(date(1941, 3, 8))
    r = await s.client.post(
        "/canteen/diners",
        headers=canteen_staff(s),
        json={
            "canteen_id": c["id"],
            "name": "赵桂香",
            "birth_date": "1941-03-08",
            "community": "yuntai",
            "compound": "yuntaiyuan",
            "phone": "13935201101",
            "id_number": number,
            "health_notes": "左腿受伤 injured left leg",
            "circumstances": ["living_alone"],
            "dietary": ["soft_food", "low_salt"],
            "dislikes": [" 香菜 ", "香菜"],
            "delivery_eligible": True,
            "delivery_address": "云泰园3号楼2单元501",
        },
    )
    assert r.status_code == 201, r.text
    zhao = r.json()
    assert zhao["phone"] == "139****1101"
    assert zhao["id_number"] == number[:6] + "********" + number[-4:]
    assert zhao["has_health_notes"] is True and "health_notes" not in zhao
    assert zhao["age"] == 90 and zhao["dislikes"] == ["香菜"] and len(zhao["card_code"]) == 10

    async with s.runtime("canteen").db.engine.connect() as conn:
        row = (await conn.execute(sa.select(DINERS).where(DINERS.c.id == UUID(zhao["id"])))).one()
    assert number not in str(tuple(row)) and "injured" not in str(tuple(row))
    assert row.id_number_enc.startswith("v2:") and len(row.id_number_hash) == 64

    # Only staff with the `pii:reveal` permission read the unmasked data, with a purpose; each read is logged.
    r = await s.client.get(
        f"/canteen/diners/{zhao['id']}/sensitive",
        headers=canteen_staff(s),
        params={"purpose": "family contact after absence"},
    )
    assert r.status_code == 403 and r.json()["code"] == "reveal_not_permitted"
    revealer = s.auth("staff", sub="cook-yunxing-street", scopes=["canteen:yunxing-street", "pii:reveal"])
    r = await s.client.get(
        f"/canteen/diners/{zhao['id']}/sensitive", headers=revealer, params={"purpose": "family contact after absence"}
    )
    assert r.status_code == 200
    assert r.json() == {
        "id": zhao["id"],
        "phone": "13935201101",
        "id_number": number,
        "health_notes": "左腿受伤 injured left leg",
    }
    r = await s.client.get(f"/canteen/diners/{zhao['id']}/sensitive", headers=revealer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.purpose"
    log = (await s.client.get(f"/canteen/diners/{zhao['id']}/access-log", headers=county(s))).json()["items"]
    assert [(e["subject"], e["purpose"]) for e in log] == [("cook-yunxing-street", "family contact after absence")]

    # Staff find her by ID number (the keyed hash), but only in their scope.
    r = await s.client.post("/canteen/diners/lookup", headers=canteen_staff(s), json={"id_number": number})
    assert r.status_code == 200 and r.json()["id"] == zhao["id"]
    r = await s.client.post("/canteen/diners/lookup", headers=community_staff(s, "dongyan"), json={"id_number": number})
    assert r.status_code == 404
    r = await s.client.post("/canteen/diners/lookup", headers=canteen_staff(s), json={"id_number": "1234"})
    assert r.status_code == 422

    # The same person cannot be registered twice.
    r = await s.client.post(
        "/canteen/diners",
        headers=county(s),
        json={
            "canteen_id": c["id"],
            "name": "赵",
            "birth_date": "1941-03-08",
            "community": "yuntai",
            "id_number": number.lower(),
        },
    )
    assert r.status_code == 409 and r.json()["code"] == "diner_exists" and r.json()["diner_id"] == zhao["id"]


async def test_who_may_register_and_see_diners(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    grid = s.auth("grid_worker", sub="grid-changhong", scopes=["compound:yuntaiyuan"])
    mine = await make_diner(s, c["id"], headers=grid, community="yuntai", compound="yuntaiyuan")
    r = await s.client.post(
        "/canteen/diners",
        headers=grid,
        json={"canteen_id": c["id"], "name": "王", "birth_date": "1950-06-12", "community": "dongyan"},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden_scope"
    r = await s.client.post(
        "/canteen/diners",
        headers=resident(s, "someone"),
        json={"canteen_id": c["id"], "name": "王", "birth_date": "1950-06-12", "community": "yunxing"},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden_role"
    r = await s.client.post(
        "/canteen/diners",
        headers=county(s),
        json={
            "canteen_id": c["id"],
            "name": "王",
            "birth_date": "1850-06-12",
            "community": "yunxing",
            "id_number": "12345",
        },
    )
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"birth_date", "id_number"}
    wang = await make_diner(s, c["id"], name="王秀英", birth=date(1950, 6, 12))
    other = await make_canteen(s, "dongyan-road", community="dongyan")
    chen = await make_diner(s, other["id"], name="陈玉梅", community="dongyan")

    names = [d["name"] for d in (await s.client.get("/canteen/diners", headers=grid)).json()["items"]]
    assert names == [mine["name"]]
    names = [d["name"] for d in (await s.client.get("/canteen/diners", headers=canteen_staff(s))).json()["items"]]
    assert sorted(names) == sorted([mine["name"], wang["name"]])
    page = (await s.client.get("/canteen/diners", headers=county(s), params={"limit": 2})).json()
    nxt = (await s.client.get("/canteen/diners", headers=county(s), params={"cursor": page["next_cursor"]})).json()
    assert len(page["items"]) + len(nxt["items"]) == 3 and nxt["next_cursor"] is None
    assert (await s.client.get(f"/canteen/diners/{chen['id']}", headers=canteen_staff(s))).status_code == 404
    r = await s.client.get(f"/canteen/diners/{chen['id']}", headers=community_staff(s, "dongyan"))
    assert r.status_code == 200
    r = await s.client.get("/canteen/diners", headers=county(s), params={"name": "王"})
    assert [d["name"] for d in r.json()["items"]] == ["王秀英"]


async def test_the_elder_and_family_see_and_edit_their_own(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], subject="wx-zhao")
    elder = resident(s, "wx-zhao")
    son = resident(s, "wx-son")
    r = await s.client.post(
        f"/canteen/diners/{zhao['id']}/family",
        headers=elder,
        json={"subject": "wx-son", "name": "赵军", "relation": "son", "phone": "13800001111"},
    )
    assert r.status_code == 201 and r.json()["phone"] == "138****1111"
    member = r.json()
    r = await s.client.post(
        f"/canteen/diners/{zhao['id']}/family",
        headers=elder,
        json={"subject": "wx-son", "name": "赵军", "relation": "son"},
    )
    assert r.status_code == 409 and r.json()["code"] == "family_member_exists"

    for who in (elder, son):
        mine = (await s.client.get("/canteen/me/diners", headers=who)).json()
        assert [d["id"] for d in mine] == [zhao["id"]] and mine[0]["family"][0]["relation"] == "son"
    assert (await s.client.get("/canteen/me/diners", headers=resident(s, "stranger"))).json() == []
    assert (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=resident(s, "stranger"))).status_code == 404

    # Family may note tastes and away days, not circumstances (they set the subsidy).
    r = await s.client.patch(
        f"/canteen/diners/{zhao['id']}",
        headers=son,
        json={"taste_notes": "likes millet porridge", "away_from": TODAY.isoformat(), "away_until": TODAY.isoformat()},
    )
    assert r.status_code == 200 and r.json()["taste_notes"] == "likes millet porridge"
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=son, json={"circumstances": ["tekun"]})
    assert r.status_code == 403 and r.json()["code"] == "forbidden_field"
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=county(s), json={"circumstances": ["tekun"]})
    assert r.status_code == 200 and r.json()["circumstances"] == ["tekun"]
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=son, json={"dislikes": [" 葱", "葱", "蒜 "]})
    assert r.status_code == 200 and r.json()["dislikes"] == ["葱", "蒜"]
    # Staff correct the birth date and the ID number (re-encrypted, re-hashed, masked).
    number = id_number(date(1941, 4, 8))
    r = await s.client.patch(
        f"/canteen/diners/{zhao['id']}", headers=county(s), json={"birth_date": "1941-04-08", "id_number": number}
    )
    assert r.status_code == 200 and r.json()["birth_date"] == "1941-04-08"
    assert r.json()["id_number"].endswith(number[-4:])
    r = await s.client.post("/canteen/diners/lookup", headers=county(s), json={"id_number": number})
    assert r.json()["id"] == zhao["id"]
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=county(s), json={"birth_date": "2999-01-01"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "birth_date"
    r = await s.client.patch(f"/canteen/diners/{zhao['id']}", headers=son, json={"birth_date": "1941-04-09"})
    assert r.status_code == 403
    r = await s.client.get(f"/canteen/diners/{zhao['id']}/sensitive", headers=son, params={"purpose": "curious"})
    assert r.status_code == 403

    r = await s.client.delete(f"/canteen/diners/{zhao['id']}/family/{member['id']}", headers=son)
    assert r.status_code == 204
    assert (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=son)).status_code == 404


async def test_a_nul_byte_in_a_text_parameter_is_a_422_that_names_it(
    canteen: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NUL byte in the query or path is refused before any route runs (the platform's guard); behind the guard
    the parameters refuse it themselves (text(n)), naming the field — never a database error on PostgreSQL or an
    empty list on SQLite."""
    s = canteen
    staff = county(s)
    refused = {
        "/canteen/diners?name=%E8%B5%B5%00": "query.name",
        f"/canteen/diners/{uuid4()}/sensitive?purpose=a%00call": "query.purpose",
        "/canteen/canteens/yunxing%00street": "path.canteen_ref",
    }
    for url in refused:
        r = await s.client.get(url, headers=staff)
        assert r.status_code == 422 and r.json()["code"] == "nul_byte", (url, r.text)

    async def unguarded(self: RefuseNulMiddleware, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(RefuseNulMiddleware, "__call__", unguarded)
    for url, field in refused.items():
        r = await s.client.get(url, headers=staff)
        assert r.status_code == 422, (url, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (url, r.text)


def test_a_birth_date_is_plausible_up_to_the_countys_today() -> None:
    """The county's calendar decides, with the service's (pinned) clock, not the server's: at 00:30 in
    Shanghai it is still yesterday in UTC, and a birth date of today is no future one."""
    pin(TODAY, 0, 30)
    assert plausible_birth(TODAY) == TODAY
    with pytest.raises(ValueError, match="not plausible"):
        plausible_birth(TODAY + timedelta(days=1))
