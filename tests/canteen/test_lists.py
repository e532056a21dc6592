"""The canteen's lists page in a stable order: walked one item at a time, a list gives the same items, in the same
order, as one page of all of them — with and without its filters."""

from __future__ import annotations

from typing import Any

from services.canteen.demo import seed_demo
from tests.canteen.helpers import TOMORROW, book, canteen_staff, county, make_canteen, make_delivery_diner
from tests.support.client import System


async def one_at_a_time(s: System, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    for _ in range(100):
        page = {**params, "limit": 1} if cursor is None else {**params, "limit": 1, "cursor": cursor}
        r = await s.client.get(path, headers=headers, params=page)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path} did not end")


async def all_at_once(s: System, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    r = await s.client.get(path, headers=headers, params={**params, "limit": 200})
    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_every_list_walks_page_by_page_in_the_order_of_one_page(canteen: System) -> None:
    s = canteen
    await seed_demo(s.runtime("canteen"))
    await make_canteen(s, "gangcheng-north", community="gangcheng", status="planned")
    staff = county(s)
    yunxing = (await s.client.get("/canteen/canteens/yunxing-street")).json()
    menus = await all_at_once(s, "/canteen/canteens/yunxing-street/menus", {})
    lunch = next(m for m in menus if m["slot"] == "lunch" and m["meal_date"] == TOMORROW.isoformat())
    for _ in range(3):
        diner = await make_delivery_diner(s, yunxing["id"], name="钱秀英")
        assert (await book(s, staff, diner["id"], lunch, fulfilment="delivery")).status_code == 201
    diner_id = next(d["id"] for d in await all_at_once(s, "/canteen/diners", staff))
    for purpose in ("a call back", "a home visit"):
        params = {"purpose": purpose}
        assert (await s.client.get(f"/canteen/diners/{diner_id}/sensitive", headers=staff, params=params)).is_success
    assert (await s.client.post("/canteen/care/scan", headers=staff)).is_success

    lists: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        ("/canteen/canteens", {}, {}),
        ("/canteen/canteens", {}, {"community": "gangcheng"}),
        ("/canteen/canteens", {}, {"status": "planned"}),
        ("/canteen/canteens/yunxing-street/menus", {}, {}),
        ("/canteen/canteens/yunxing-street/menus", staff, {"include_drafts": True, "slot": "lunch"}),
        ("/canteen/canteens/yunxing-street/deliveries", canteen_staff(s), {"meal_date": TOMORROW.isoformat()}),
        ("/canteen/diners", staff, {}),
        ("/canteen/diners", staff, {"name": "钱", "delivery": True}),
        (f"/canteen/diners/{diner_id}/access-log", staff, {}),
        ("/canteen/orders", staff, {"canteen_id": yunxing["id"], "meal_date": TOMORROW.isoformat()}),
        ("/canteen/orders", staff, {"diner_id": diner_id, "status": "served"}),
        ("/canteen/care/alerts", staff, {}),
        ("/canteen/subsidy-rules", staff, {}),
        ("/canteen/subsidy-rules", staff, {"on": TOMORROW.isoformat()}),
    ]
    for path, headers, params in lists:
        everything = await all_at_once(s, path, headers, **params)
        assert len(everything) > 1 or path.endswith("/alerts"), (path, params)  # the demo raises one alert
        assert await one_at_a_time(s, path, headers, **params) == everything, (path, params)
