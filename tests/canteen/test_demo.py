"""Demo data: the four canteens of Zuoyun with slots, a week of menus, subsidy rules and diners — idempotent."""

from __future__ import annotations

from datetime import timedelta

from services.canteen.demo import seed_demo
from tests.canteen.helpers import TODAY, TOMORROW, book, county
from tests.support.client import System


async def test_demo_data_is_complete_and_idempotent(canteen: System) -> None:
    s = canteen
    runtime = s.runtime("canteen")
    await seed_demo(runtime)
    await seed_demo(runtime)  # a second run adds nothing
    canteens = {c["code"]: c for c in (await s.client.get("/canteen/canteens")).json()["items"]}
    assert set(canteens) == {"yunxing-street", "dongyan-road", "yuntaiyuan", "yunheyuan"}
    assert canteens["yunxing-street"]["status"] == "open"
    assert {c["status"] for code, c in canteens.items() if code != "yunxing-street"} == {"planned"}
    assert all(len(c["slots"]) == 3 for c in canteens.values())
    assert canteens["yuntaiyuan"]["community"] == "yuntai" and canteens["yunheyuan"]["community"] == "yunhe"

    menus = (await s.client.get("/canteen/canteens/yunxing-street/menus", params={"limit": 200})).json()["items"]
    assert len(menus) == 21
    lunch = next(m for m in menus if m["slot"] == "lunch" and m["meal_date"] == TOMORROW.isoformat())
    four = lunch["set_meals"][0]
    assert four["name"].startswith("四菜一汤") and four["price_fen"] == 1000 and len(four["dishes"]) == 5
    drafts = (
        await s.client.get(
            "/canteen/canteens/yuntaiyuan/menus", headers=county(s), params={"include_drafts": True, "limit": 200}
        )
    ).json()["items"]
    assert len(drafts) == 21 and {m["status"] for m in drafts} == {"draft"}

    rules = (await s.client.get("/canteen/subsidy-rules", headers=county(s))).json()["items"]
    assert {r["key"] for r in rules} == {"age-60-69", "age-70-79", "age-80-plus", "dibao", "tekun", "disabled"}
    diners = (await s.client.get("/canteen/diners", headers=county(s))).json()["items"]
    assert len(diners) == 6 and all("****" in d["phone"] for d in diners)
    zhao = next(d for d in diners if d["name"] == "赵桂香")
    assert zhao["delivery_eligible"] and zhao["compound"] == "yuntaiyuan" and zhao["age"] >= 80

    # A month of history: the settlement has figures, and 赵 (who hurt her leg) stopped coming four days ago.
    last_month = (TODAY.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    st = (await s.client.get(f"/canteen/canteens/yunxing-street/settlements/{last_month}", headers=county(s))).json()
    assert st["meals_served"] > 0 and st["reconciliation"]["price_equals_elder_plus_subsidy"]
    assert st["reconciliation"]["subsidy_total_fen"] == st["reconciliation"]["claimed_fen"] > 0
    scan = (await s.client.post("/canteen/care/scan", headers=county(s))).json()
    assert scan["raised"] == 1
    [alert] = (await s.client.get("/canteen/care/alerts", headers=county(s))).json()["items"]
    assert alert["diner_id"] == zhao["id"] and alert["days_absent"] == 4

    # The demo is usable: 赵 books tomorrow's soft lunch for delivery; 3 yuan from the 80+ subsidy.
    r = await book(s, county(s), zhao["id"], lunch, meal=1, fulfilment="delivery")
    assert r.status_code == 201, r.text
    assert r.json()["subsidy_fen"] == 300 and r.json()["elder_pays_fen"] == 700
