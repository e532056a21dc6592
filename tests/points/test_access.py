"""The points answers that ``minsheng.platform.access`` now gives, pinned whole (status, code, title, detail):
the same 404 for a missing thing and one out of reach, and a 403 ``outside_scope`` for a place not the caller's."""

from __future__ import annotations

from typing import Any

import httpx

from tests.points.helpers import merchant, rider, staff
from tests.support.client import System

EN = {"Accept-Language": "en"}


def _answer(r: httpx.Response) -> tuple[int, str, str, str]:
    body: dict[str, Any] = r.json()
    return r.status_code, body["code"], body["title"], body["detail"]


def _outside(detail: str) -> tuple[int, str, str, str]:
    return 403, "outside_scope", "Outside your scope", detail


async def test_out_of_reach_answers_as_missing(points: System) -> None:
    fan = await rider(points)
    shop = await merchant(points)
    elsewhere = {**staff(points, "yunxing"), **EN}
    gone = "0190c0de-0000-7000-8000-000000000000"
    for path, what, ident in [
        (f"/points/riders/{fan.id}", "rider", fan.id),
        (f"/points/riders/{gone}", "rider", gone),
        (f"/points/merchants/{shop.id}", "merchant", shop.id),
    ]:
        r = await points.client.get(path, headers=elsewhere)
        thing = what.capitalize()
        assert _answer(r) == (
            404,
            f"{what}_not_found",
            f"{thing} not found",
            f"No {what} {ident} (or it is outside your scope).",
        )


async def test_creating_or_moving_outside_ones_scope(points: System) -> None:
    fan = await rider(points)
    mine, theirs = {**staff(points), **EN}, {**staff(points, "yunxing"), **EN}
    moved = await points.client.patch(f"/points/riders/{fan.id}", headers=mine, json={"community": "yunxing"})
    assert _answer(moved) == _outside("You cannot move riders to that community.")
    team = await points.client.post("/points/teams", headers=theirs, json={"name": "x", "community": "gangcheng"})
    assert _answer(team) == _outside("You cannot create teams in that community.")
    shop = {"name": "面馆", "category": "restaurant", "community": "gangcheng", "contact_phone": "13900001111"}
    onboarded = await points.client.post("/points/merchants", headers=theirs, json=shop)
    assert _answer(onboarded) == _outside("You cannot onboard merchants there.")
    task = {"type_code": "meal_delivery", "title": "送餐", "community": "gangcheng", "address": "港城剧院"}
    posted = await points.client.post("/points/tasks", headers=theirs, json=task)
    assert _answer(posted) == _outside("You cannot post tasks in that community.")
    # The same refusal in the default language is the catalog's translation, not the English msgid.
    zh = await points.client.post("/points/tasks", headers=staff(points, "yunxing"), json=task)
    assert zh.status_code == 403 and zh.json()["code"] == "outside_scope" and zh.json()["title"] != "Outside your scope"
