"""Canteens, meal slots and menus through the API: scope, publication, suitability for a diner's needs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

from minsheng.platform.pagination import Page
from services.canteen.models import MenuPublic
from tests.canteen.helpers import (
    FOUR_AND_SOUP,
    SOFT_SET,
    TODAY,
    TOMORROW,
    canteen_staff,
    community_staff,
    county,
    make_canteen,
    make_diner,
    make_menu,
    resident,
)
from tests.support.client import System


async def test_canteens_are_public_and_managed_in_scope(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    assert [x["slot"] for x in c["slots"]] == ["breakfast", "lunch", "dinner"]
    assert c["status"] == "open" and c["communities"] == ["gangcheng", "yunxing"]
    await make_canteen(s, "yunheyuan", community="yunhe", status="planned")

    everyone = (await s.client.get("/canteen/canteens")).json()["items"]
    assert [x["code"] for x in everyone] == ["yunheyuan", "yunxing-street"]

    async def serving(community: str, **page: Any) -> dict[str, Any]:
        r = await s.client.get("/canteen/canteens", params={"community": community, **page})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    assert len((await serving("gangcheng"))["items"]) == 2  # both serve it besides their own community
    first = await serving("gangcheng", limit=1)
    rest = await serving("gangcheng", limit=1, cursor=first["next_cursor"])
    assert [x["code"] for x in first["items"] + rest["items"]] == ["yunheyuan", "yunxing-street"]
    assert rest["next_cursor"] is None
    assert [x["code"] for x in (await serving("yunhe"))["items"]] == ["yunheyuan"]
    planned = (await s.client.get("/canteen/canteens", params={"status": "planned", "limit": 1})).json()
    assert [x["code"] for x in planned["items"]] == ["yunheyuan"] and planned["next_cursor"] is None

    # Staff of another community may neither open a canteen here nor manage this one.
    other = community_staff(s, "dongyan")
    r = await s.client.post(
        "/canteen/canteens",
        headers=other,
        json={"code": "x", "name": "x", "address": "x", "community": "yunxing", "operator": "x"},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden_scope"
    r = await s.client.patch("/canteen/canteens/yunxing-street", headers=other, json={"status": "closed"})
    assert r.status_code == 404 and r.json()["code"] == "canteen_not_found"
    r = await s.client.patch(
        "/canteen/canteens/yunheyuan",
        headers=community_staff(s, "yunhe"),
        json={"status": "open", "delivery_points": 8},
    )
    assert r.status_code == 200 and r.json()["status"] == "open" and r.json()["delivery_points"] == 8

    r = await s.client.post(
        "/canteen/canteens",
        headers=county(s),
        json={"code": "yunheyuan", "name": "dup", "address": "x", "community": "yunhe", "operator": "x"},
    )
    assert r.status_code == 409 and r.json()["code"] == "canteen_code_taken"
    r = await s.client.put(
        "/canteen/canteens/yunheyuan/slots/lunch",
        headers=county(s),
        json={"serve_from": "12:00", "serve_until": "11:00"},
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


async def test_menus_are_drafted_published_and_filtered_for_a_diner(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    staff = canteen_staff(s)
    draft = await make_menu(s, "yunxing-street", TOMORROW, publish=False)
    assert draft["status"] == "draft" and draft["capacity"] == 100 and draft["remaining"] == 100
    # Drafts are invisible to the public.
    assert (await s.client.get("/canteen/canteens/yunxing-street/menus")).json()["items"] == []
    assert (await s.client.get(f"/canteen/menus/{draft['id']}")).status_code == 404
    r = await s.client.get("/canteen/canteens/yunxing-street/menus", params={"include_drafts": True})
    assert r.status_code == 403

    # A week ahead, published in one call.
    for offset in range(2, 8):
        await make_menu(s, "yunxing-street", TODAY + timedelta(days=offset), publish=False)
    await make_menu(
        s,
        "yunxing-street",
        TOMORROW,
        "breakfast",
        publish=False,
        meals=[{**SOFT_SET, "name": "粥 congee", "price_fen": 400}],
    )
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/menus/publish",
        headers=staff,
        json={"date_from": TOMORROW.isoformat(), "date_to": (TODAY + timedelta(7)).isoformat()},
    )
    assert r.status_code == 200 and len(r.json()) == 8

    page = (await s.client.get("/canteen/canteens/yunxing-street/menus", params={"limit": 3})).json()
    assert [(m["meal_date"], m["slot"]) for m in page["items"]] == [
        (TOMORROW.isoformat(), "breakfast"),
        (TOMORROW.isoformat(), "lunch"),
        ((TODAY + timedelta(2)).isoformat(), "lunch"),
    ]
    rest = (
        await s.client.get(
            "/canteen/canteens/yunxing-street/menus", params={"limit": 50, "cursor": page["next_cursor"]}
        )
    ).json()
    assert len(rest["items"]) == 4 and rest["next_cursor"] is None  # the default range: today + 6 days

    # 赵 needs soft, low-salt food and dislikes coriander: only the soft set suits her.
    zhao = await make_diner(s, c["id"], dietary=["soft_food", "low_salt"], dislikes=["香菜"])
    lunch = page["items"][1]
    r = await s.client.get(f"/canteen/menus/{lunch['id']}", headers=county(s), params={"diner_id": zhao["id"]})
    meals = {m["name"]: m for m in r.json()["set_meals"]}
    assert meals[SOFT_SET["name"]]["suitable"] is True
    four = meals[FOUR_AND_SOUP["name"]]
    assert four["suitable"] is False
    assert set(four["conflicts"]) == {"not_soft_food", "not_low_salt", "dislike:香菜"}
    r = await s.client.get(
        "/canteen/canteens/yunxing-street/menus",
        headers=county(s),
        params={"diner_id": zhao["id"], "only_suitable": True, "slot": "lunch"},
    )
    assert {m["name"] for menu in r.json()["items"] for m in menu["set_meals"]} == {SOFT_SET["name"]}
    # Anyone can ask by needs; no spicy food rules out the kung pao chicken.
    r = await s.client.get(f"/canteen/menus/{lunch['id']}", params={"needs": ["no_spicy"]})
    meals = {m["name"]: m for m in r.json()["set_meals"]}
    assert meals[FOUR_AND_SOUP["name"]]["conflicts"] == ["contains_spicy"]
    # Looking up a diner needs a login, and one that may see them.
    assert (await s.client.get(f"/canteen/menus/{lunch['id']}", params={"diner_id": zhao["id"]})).status_code == 401
    r = await s.client.get(
        f"/canteen/menus/{lunch['id']}", headers=resident(s, "nosy"), params={"diner_id": zhao["id"]}
    )
    assert r.status_code == 404


async def test_menu_rules(canteen: System) -> None:
    s = canteen
    await make_canteen(s)
    await make_canteen(
        s,
        "yunheyuan",
        community="yunhe",
        status="planned",
        slots={"lunch": {"serve_from": "11:00", "serve_until": "12:30"}},
    )
    staff = canteen_staff(s)
    body = {"set_meals": [FOUR_AND_SOUP]}
    r = await s.client.put(
        f"/canteen/canteens/yunxing-street/menus/{(TODAY - timedelta(1)).isoformat()}/lunch", headers=staff, json=body
    )
    assert r.status_code == 422 and r.json()["code"] == "meal_date_in_past"
    r = await s.client.put(
        f"/canteen/canteens/yunheyuan/menus/{TOMORROW.isoformat()}/dinner", headers=county(s), json=body
    )
    assert r.status_code == 409 and r.json()["code"] == "slot_not_offered"
    r = await s.client.put(
        f"/canteen/canteens/yunxing-street/menus/{TOMORROW.isoformat()}/lunch", headers=staff, json={"set_meals": []}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "set_meals"
    r = await s.client.put(
        f"/canteen/canteens/yunxing-street/menus/{TOMORROW.isoformat()}/lunch",
        headers=staff,
        json={"set_meals": [{**FOUR_AND_SOUP, "price_fen": -1}]},
    )
    assert r.status_code == 422
    # Canteen staff manage only their own canteen.
    r = await s.client.put(f"/canteen/canteens/yunheyuan/menus/{TOMORROW.isoformat()}/lunch", headers=staff, json=body)
    assert r.status_code == 404
    # A planned canteen prepares menus but cannot publish them.
    menu = await make_menu(s, "yunheyuan", TOMORROW, publish=False)
    r = await s.client.post(f"/canteen/menus/{menu['id']}/publish", headers=county(s))
    assert r.status_code == 409 and r.json()["code"] == "canteen_not_open"
    # Re-saving a draft replaces its set meals.
    r = await s.client.put(
        f"/canteen/canteens/yunheyuan/menus/{TOMORROW.isoformat()}/lunch",
        headers=county(s),
        json={"set_meals": [SOFT_SET], "capacity": 30},
    )
    assert r.status_code == 200 and [m["name"] for m in r.json()["set_meals"]] == [SOFT_SET["name"]]
    assert r.json()["capacity"] == 30 and r.json()["id"] == menu["id"]


async def test_last_weeks_menus_are_copied_as_drafts(canteen: System) -> None:
    s = canteen
    await make_canteen(s)
    staff = canteen_staff(s)
    for offset in range(3):
        await make_menu(s, "yunxing-street", TODAY + timedelta(days=offset))
    await make_menu(s, "yunxing-street", TODAY, "breakfast", meals=[{**SOFT_SET, "price_fen": 400}])
    next_week = TODAY + timedelta(days=7)
    kept = await make_menu(s, "yunxing-street", next_week + timedelta(days=1), publish=False, meals=[SOFT_SET])
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/menus/copy",
        headers=staff,
        json={"from_date": TODAY.isoformat(), "to_date": next_week.isoformat(), "days": 7},
    )
    assert r.status_code == 201, r.text
    copied = r.json()
    assert [(m["meal_date"], m["slot"], m["status"]) for m in copied] == [
        (next_week.isoformat(), "breakfast", "draft"),
        (next_week.isoformat(), "lunch", "draft"),
        ((next_week + timedelta(days=2)).isoformat(), "lunch", "draft"),
    ]
    assert [x["name"] for x in copied[1]["set_meals"]] == [FOUR_AND_SOUP["name"], SOFT_SET["name"]]
    assert copied[1]["set_meals"][0]["dishes"][0]["name"] == FOUR_AND_SOUP["dishes"][0]["name"]
    r = await s.client.get(f"/canteen/menus/{kept['id']}", headers=staff)
    assert [x["name"] for x in r.json()["set_meals"]] == [SOFT_SET["name"]]
    r = await s.client.post(
        "/canteen/canteens/yunxing-street/menus/copy",
        headers=staff,
        json={"from_date": TODAY.isoformat(), "to_date": (TODAY - timedelta(days=7)).isoformat()},
    )
    assert r.status_code == 422 and r.json()["code"] == "meal_date_in_past"


async def test_the_menu_list_is_exactly_what_its_response_model_serializes(canteen: System) -> None:
    """The public menu list is built from rows and serialized without the response model (it is the hot read):
    its JSON must be byte for byte what ``Page[MenuPublic]`` makes of it, and it must answer like the others."""
    s = canteen
    await make_canteen(s)
    for offset in range(1, 4):
        await make_menu(s, "yunxing-street", TODAY + timedelta(days=offset), meals=[FOUR_AND_SOUP, SOFT_SET])
    await make_menu(s, "yunxing-street", TOMORROW, "breakfast", meals=[{**SOFT_SET, "name": "粥 congee"}])
    cases: list[dict[str, Any]] = [
        {},
        {"needs": ["soft_food", "no_spicy"]},
        {"limit": 2},
        {"slot": "lunch"},
        {"needs": ["soft_food"], "only_suitable": True},
    ]
    for params in cases:
        r = await s.client.get("/canteen/canteens/yunxing-street/menus", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert Page[MenuPublic].model_validate_json(r.content).model_dump_json().encode() == r.content
    first = (await s.client.get("/canteen/canteens/yunxing-street/menus", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and [len(m["set_meals"]) for m in first["items"]] == [1, 2]
    rest = (
        await s.client.get(
            "/canteen/canteens/yunxing-street/menus", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [m["meal_date"] for m in rest["items"]] == [(TODAY + timedelta(days=d)).isoformat() for d in (2, 3)]
    assert rest["next_cursor"] is None
    # An unknown canteen is a 404, before a bad range or cursor; a canteen without menus an empty page.
    for params in ({}, {"date_from": "2030-01-02", "date_to": "2030-01-01"}, {"cursor": "nonsense"}):
        r = await s.client.get("/canteen/canteens/nowhere/menus", params=params)
        assert r.status_code == 404 and r.json()["code"] == "canteen_not_found"
    await make_canteen(s, "yunheyuan", community="yunhe")
    r = await s.client.get("/canteen/canteens/yunheyuan/menus")
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}


async def test_a_draft_menu_answers_as_a_missing_one(canteen: System) -> None:
    """A draft's existence does not leak: a resident asking for one gets the very answer a menu that does not
    exist gets (only the id they asked for, the instance and the request id differ)."""
    s = canteen
    await make_canteen(s)
    draft = await make_menu(s, "yunxing-street", TOMORROW, publish=False)
    missing = str(uuid4())

    async def problem(menu_id: str) -> dict[str, Any]:
        r = await s.client.get(f"/canteen/menus/{menu_id}", headers=resident(s, "wx-zhao"))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), r.text
        body = {k: v for k, v in r.json().items() if k not in ("instance", "request_id")}
        return json.loads(json.dumps(body).replace(menu_id, "<menu_id>"))  # type: ignore[no-any-return]

    assert await problem(draft["id"]) == await problem(missing)
    assert (await problem(missing))["code"] == "menu_not_found"
