"""Building blocks for canteen tests: a pinned clock, tokens, and a canteen with slots, menus and diners."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from minsheng.platform.sql import table_of
from services.canteen import config
from tests.support.client import System

# A Monday. The canteen clock is pinned (services.canteen.config.pin_clock), so cut-offs are deterministic.
TODAY = date(2031, 3, 10)
TOMORROW = TODAY + timedelta(days=1)


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=config.tz())


def pin(day: date, hh: int = 8, mm: int = 0) -> None:
    config.pin_clock(local(day, hh, mm))


def county(s: System) -> dict[str, str]:
    return s.auth("staff", sub="county-civil-affairs", scopes=["*"])


def canteen_staff(s: System, code: str = "yunxing-street") -> dict[str, str]:
    return s.auth("staff", sub=f"cook-{code}", scopes=[f"canteen:{code}"])


def community_staff(s: System, community: str = "yunxing") -> dict[str, str]:
    return s.auth("staff", sub=f"staff-{community}", scopes=[f"community:{community}"])


def resident(s: System, sub: str) -> dict[str, str]:
    return s.auth("resident", sub=sub, scopes=())


SLOTS: dict[str, dict[str, Any]] = {
    "breakfast": {"serve_from": "07:00", "serve_until": "08:30", "capacity": 50, "cutoff_minutes": 720},
    "lunch": {
        "serve_from": "11:00",
        "serve_until": "12:30",
        "capacity": 100,
        "cutoff_minutes": 120,
        "deliver_by": "12:00",
    },
    "dinner": {"serve_from": "17:00", "serve_until": "18:30", "capacity": 80, "cutoff_minutes": 180},
}

FOUR_AND_SOUP: dict[str, Any] = {
    "name": "四菜一汤 four dishes and a soup",
    "kind": "standard",
    "price_fen": 1000,
    "tags": [],
    "dishes": [
        {"name": "宫保鸡丁 kung pao chicken", "tags": ["spicy"], "ingredients": ["鸡肉", "花生"]},
        {"name": "土豆丝 shredded potato", "tags": [], "ingredients": ["土豆"]},
        {"name": "红烧豆腐 braised tofu", "tags": [], "ingredients": ["豆腐", "香菜"]},
        {"name": "清炒油菜 greens", "tags": ["low_salt"], "ingredients": []},
        {"name": "紫菜蛋花汤 seaweed soup", "tags": ["soft", "low_salt"], "ingredients": []},
    ],
}
SOFT_SET: dict[str, Any] = {
    "name": "软食套餐 soft set",
    "kind": "soft",
    "price_fen": 1000,
    "tags": ["soft", "low_salt"],
    "dishes": [
        {"name": "鸡蛋羹 egg custard", "tags": ["soft", "low_salt"], "ingredients": ["鸡蛋"]},
        {"name": "蒸南瓜 steamed pumpkin", "tags": ["soft", "low_salt", "diabetic_friendly"]},
    ],
}


async def make_canteen(
    s: System,
    code: str = "yunxing-street",
    community: str = "yunxing",
    status: str = "open",
    slots: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    r = await s.client.post(
        "/canteen/canteens",
        headers=county(s),
        json={
            "code": code,
            "name": f"{code} 幸福食堂",
            "address": f"{code} 12",
            "community": community,
            "communities": [community, "gangcheng"],
            "operator": "颐康餐饮 Yikang Catering",
            "status": status,
        },
    )
    assert r.status_code == 201, r.text
    for slot, body in (slots or SLOTS).items():
        r = await s.client.put(f"/canteen/canteens/{code}/slots/{slot}", headers=county(s), json=body)
        assert r.status_code == 200, r.text
    r = await s.client.get(f"/canteen/canteens/{code}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def make_menu(
    s: System,
    code: str,
    day: date,
    slot: str = "lunch",
    *,
    capacity: int | None = None,
    meals: list[dict[str, Any]] | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"set_meals": meals or [FOUR_AND_SOUP, SOFT_SET]}
    if capacity is not None:
        body["capacity"] = capacity
    r = await s.client.put(
        f"/canteen/canteens/{code}/menus/{day.isoformat()}/{slot}", headers=canteen_staff(s, code), json=body
    )
    assert r.status_code == 200, r.text
    menu = r.json()
    if publish:
        r = await s.client.post(f"/canteen/menus/{menu['id']}/publish", headers=canteen_staff(s, code))
        assert r.status_code == 200, r.text
        menu = r.json()
    return menu  # type: ignore[no-any-return]


_ids = iter(range(10_000, 99_999))


def id_number(birth: date) -> str:
    body = f"140226{birth:%Y%m%d}{next(_ids) % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


async def make_diner(
    s: System,
    canteen_id: str,
    *,
    name: str = "赵桂香",
    birth: date = date(1941, 3, 8),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "canteen_id": canteen_id,
        "name": name,
        "birth_date": birth.isoformat(),
        "community": "yunxing",
        "phone": "13935201101",
        "id_number": id_number(birth),
        **extra,
    }
    r = await s.client.post("/canteen/diners", headers=headers or county(s), json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def make_delivery_diner(s: System, canteen_id: str, *, community: str = "yuntai", **extra: Any) -> dict[str, Any]:
    """赵桂香 at home in 云泰园 (compound yuntaiyuan, door 3号楼2单元501), registered for delivered meals."""
    return await make_diner(
        s,
        canteen_id,
        community=community,
        compound="yuntaiyuan",
        delivery_eligible=True,
        delivery_address="云泰园3号楼2单元501",
        **extra,
    )


AGE_RULES: list[dict[str, Any]] = [
    {
        "key": "age-60-69",
        "name": "60–69",
        "category": "age_60_69",
        "funder": "county_civil_affairs",
        "amount_fen": 100,
        "min_age": 60,
        "max_age": 69,
    },
    {
        "key": "age-70-79",
        "name": "70–79",
        "category": "age_70_79",
        "funder": "county_civil_affairs",
        "amount_fen": 200,
        "min_age": 70,
        "max_age": 79,
    },
    {
        "key": "age-80-plus",
        "name": "80+",
        "category": "age_80_plus",
        "funder": "county_civil_affairs",
        "amount_fen": 300,
        "min_age": 80,
        "daily_cap_fen": 600,
    },
    {
        "key": "dibao",
        "name": "低保",
        "category": "dibao",
        "funder": "county_civil_affairs",
        "amount_fen": 200,
        "stack_group": "circumstance",
        "circumstances": ["dibao"],
        "monthly_cap_fen": 1000,
    },
    {
        "key": "disabled",
        "name": "残疾",
        "category": "disabled",
        "funder": "county_disabled_persons_federation",
        "amount_fen": 100,
        "stack_group": "disability",
        "circumstances": ["disabled"],
    },
]


async def make_rules(s: System, rules: list[dict[str, Any]] | None = None, start: date = TODAY) -> None:
    for rule in rules or AGE_RULES:
        r = await s.client.post(
            "/canteen/subsidy-rules", headers=county(s), json={**rule, "effective_from": start.isoformat()}
        )
        assert r.status_code == 201, r.text


async def book(
    s: System, headers: dict[str, str], diner_id: str, menu: dict[str, Any], meal: int = 0, **extra: Any
) -> Any:
    return await s.client.post(
        "/canteen/orders",
        headers=headers,
        json={"diner_id": diner_id, "menu_id": menu["id"], "set_meal_id": menu["set_meals"][meal]["id"], **extra},
    )


async def outbox(s: System, event_type: str) -> list[dict[str, Any]]:
    """The data of every event of this type the canteen wrote to its outbox, oldest first."""
    import json

    import sqlalchemy as sa

    t = s.runtime("canteen").db.tables.outbox
    async with s.runtime("canteen").db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.payload).where(t.c.type == event_type).order_by(t.c.id))).all()
    return [json.loads(r.payload)["data"] for r in rows]


async def deliver(s: System, event: Any, *, source: str, times: int = 1) -> None:
    """Put another service's event on the in-process bus (``times`` > 1: redelivered) and wait until handled."""
    from minsheng.platform.bus.base import OutgoingMessage
    from minsheng.platform.bus.memory import InProcessBus
    from minsheng.platform.envelope import wrap

    envelope = wrap(event, service=source)
    message = OutgoingMessage(event.topic, envelope.partitionkey, envelope.model_dump_json(exclude_none=True).encode())
    assert isinstance(s.bus, InProcessBus)
    await s.bus.publish([message] * times)
    await s.bus.drain()


async def served_history(
    s: System, canteen_id: str, diner_ids: list[str], meal_days: dict[str, list[date]], service_days: list[date]
) -> None:
    """Seed the past straight into the canteen database: published lunch menus on ``service_days`` and a served
    lunch for each diner on each of their ``meal_days`` (setting up a month of history through the API would
    mean pinning the clock 30 times per diner)."""
    from uuid import UUID

    import sqlalchemy as sa

    from services.canteen.models import Menu, Order, SetMeal

    cid = UUID(canteen_id)
    db = s.runtime("canteen").db
    menus_t, meals_t = table_of(Menu), table_of(SetMeal)
    async with db.engine.connect() as conn:
        existing: dict[date, tuple[UUID, UUID]] = {}
        for r in await conn.execute(
            sa.select(menus_t.c.meal_date, menus_t.c.id, meals_t.c.id.label("meal_id"))
            .join(meals_t, meals_t.c.menu_id == menus_t.c.id)
            .where(menus_t.c.canteen_id == cid, menus_t.c.slot == "lunch")
        ):
            existing.setdefault(r.meal_date, (r.id, r.meal_id))
    menus, meals, ids = {}, {}, {}
    for day in sorted(set(service_days) | {d for days in meal_days.values() for d in days}):
        if day in existing:
            ids[day] = existing[day]
            continue
        menus[day] = Menu(canteen_id=cid, meal_date=day, slot="lunch", status="published", capacity=100)
        meals[day] = SetMeal(menu_id=menus[day].id, name="四菜一汤", price_fen=1000)
        ids[day] = (menus[day].id, meals[day].id)
    orders = [
        Order(
            canteen_id=cid,
            diner_id=UUID(d),
            menu_id=ids[day][0],
            set_meal_id=ids[day][1],
            set_meal_name="四菜一汤",
            meal_date=day,
            slot="lunch",
            fulfilment="dine_in",
            status="served",
            channel="app",
            price_fen=1000,
            subsidy_fen=0,
            elder_pays_fen=1000,
            payer="diner",
            booked_by=d,
            pickup_code=f"H{i:07d}",
            community="yunxing",
        )
        for d in diner_ids
        for i, day in enumerate(meal_days[d])
    ]
    async with db.engine.begin() as conn:
        for model, rows in ((Menu, menus.values()), (SetMeal, meals.values()), (Order, orders)):
            if rows:
                await conn.execute(sa.insert(model.__table__), [r.model_dump() for r in rows])  # type: ignore[union-attr]


async def stopped_coming(s: System, canteen_id: str, diner_id: str) -> None:
    """A regular who stopped coming: a served lunch on each of the 26 days up to four days ago, then three
    service days without her (what the absence scan raises an alert for)."""
    last = TODAY - timedelta(days=4)
    await served_history(
        s,
        canteen_id,
        [diner_id],
        {diner_id: [last - timedelta(days=i) for i in range(26)]},
        service_days=[last + timedelta(days=i) for i in range(1, 4)],
    )


async def absence_alert(s: System, canteen_id: str, diner_id: str) -> dict[str, Any]:
    """The diner stops coming and the county's scan raises one alert: that alert."""
    await stopped_coming(s, canteen_id, diner_id)
    r = await s.client.post("/canteen/care/scan", headers=county(s))
    assert r.status_code == 200 and r.json()["raised"] == 1
    [alert] = (await s.client.get("/canteen/care/alerts", headers=canteen_staff(s))).json()["items"]
    return alert  # type: ignore[no-any-return]
