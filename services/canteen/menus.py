"""Menus and set meals: planning, copying a week, publishing, capacity, and the menu page residents read
(with the diner's dietary needs checked against each meal). Use cases take a unit of work and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure_visible
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, conflict, invalid, not_found, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import PageRequest, decode_cursor, encode_cursor
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.canteens import CANTEENS, SLOT_RANK, canteen_key, canteen_row, find_canteen, slot_of, touch
from services.canteen.models import (
    Canteen,
    CanteenStatus,
    Menu,
    MenuCopy,
    MenuFilters,
    MenuPublic,
    MenuStatus,
    MenuUpsert,
    SetMeal,
    SetMealPublic,
    Slot,
)

MENUS = table_of(Menu)
SET_MEALS = table_of(SetMeal)


# --- menus --------------------------------------------------------------------------------------------------------

# What a dietary need requires of a set meal (one of these tags on the meal, or on every dish), and which dish
# tags it cannot take.
REQUIRES: dict[str, set[str]] = {
    "soft_food": {"soft"},
    "low_salt": {"low_salt"},
    "diabetic": {"diabetic_friendly", "low_sugar"},
    "low_fat": {"low_fat"},
    "vegetarian": {"vegetarian"},
    "halal": {"halal"},
}
AVOIDS: dict[str, set[str]] = {"no_spicy": {"spicy"}, "halal": {"contains_pork"}, "vegetarian": {"contains_meat"}}


def assess(meal: SetMeal, needs: Iterable[str], dislikes: Iterable[str]) -> list[str]:
    """Why this set meal does not suit someone (empty: it suits)."""
    return conflicts_of(meal.name, meal.tags, meal.dishes, needs, dislikes)


def conflicts_of(
    name: str, tags: Sequence[str], dishes: Sequence[dict[str, Any]], needs: Iterable[str], dislikes: Iterable[str]
) -> list[str]:
    """``assess`` on a set meal's name, tags and dishes (ORM object or database row alike)."""
    dish_tags = [set(d.get("tags", [])) for d in dishes]
    whole = set(tags) | (set.intersection(*dish_tags) if dish_tags else set())
    anywhere = set(tags).union(*dish_tags)
    conflicts: list[str] = []
    for need in needs:
        if need in REQUIRES and not whole & REQUIRES[need]:
            conflicts.append(f"not_{need}")
        for tag in sorted(AVOIDS.get(need, set()) & anywhere):
            conflicts.append(f"contains_{tag.removeprefix('contains_')}")
    words = " ".join(
        [name] + [d.get("name", "") for d in dishes] + [i for d in dishes for i in d.get("ingredients", [])]
    )
    conflicts.extend(f"dislike:{w}" for w in dislikes if w and w in words)
    return conflicts


def menu_public(
    menu: Menu, meals: Sequence[SetMeal], *, needs: Sequence[str] | None = None, dislikes: Sequence[str] = ()
) -> MenuPublic:
    items = []
    for m in sorted(meals, key=lambda x: x.position):
        data = {**m.model_dump(), "suitable": None, "conflicts": []}
        if needs is not None:
            conflicts = assess(m, needs, dislikes)
            data.update(suitable=not conflicts, conflicts=conflicts)
        items.append(SetMealPublic.model_validate(data))
    return MenuPublic.model_validate(
        {**menu.model_dump(), "remaining": max(menu.capacity - menu.booked, 0), "set_meals": items}
    )


async def meals_of(uow: UnitOfWork, menu_ids: Iterable[UUID]) -> dict[UUID, list[SetMeal]]:
    ids = list(menu_ids)
    out: dict[UUID, list[SetMeal]] = {i: [] for i in ids}
    if ids:
        for m in (await uow.session.execute(select(SetMeal).where(col(SetMeal.menu_id).in_(ids)))).scalars():
            out[m.menu_id].append(m)
    return out


async def upsert_menu(
    uow: UnitOfWork, canteen: Canteen, meal_date: date, slot: Slot, data: MenuUpsert
) -> tuple[Menu, list[SetMeal]]:
    if meal_date < config.today():
        raise invalid(
            "meal_date_in_past",
            "Menus are for today or later",
            _t("{meal_date} has passed.", meal_date=meal_date),
            field="meal_date",
            message="in the past",
        )
    slot_row = await slot_of(uow, canteen.id, slot.value)
    if slot_row is None or not slot_row.active:
        raise conflict(
            "slot_not_offered",
            _t("{canteen} does not serve {slot}; configure the slot first.", canteen=canteen.name, slot=slot.value),
        )
    query = select(Menu).where(Menu.canteen_id == canteen.id, Menu.meal_date == meal_date, Menu.slot == slot.value)
    if uow.db.is_postgres:
        query = query.with_for_update()
    menu = (await uow.session.execute(query)).scalar_one_or_none()
    capacity = data.capacity if data.capacity is not None else slot_row.capacity
    if menu is None:
        menu = Menu(canteen_id=canteen.id, meal_date=meal_date, slot=slot.value, capacity=capacity, note=data.note)
        uow.session.add(menu)
        try:
            await uow.session.flush()
        except sa.exc.IntegrityError as exc:
            raise conflict("concurrent_menu_change", "Someone saved this menu at the same time; retry.") from exc
    else:
        if menu.booked > 0:
            raise conflict(
                "menu_has_orders",
                "Diners have booked this menu; change capacity or add a new menu day instead of rewriting it.",
                booked=menu.booked,
            )
        await uow.session.execute(sa.delete(SetMeal).where(col(SetMeal.menu_id) == menu.id))
        menu.capacity, menu.note = capacity, data.note
        touch(menu)
    meals = [
        SetMeal(menu_id=menu.id, position=i, **{**m.model_dump(), "dishes": [d.model_dump() for d in m.dishes]})
        for i, m in enumerate(data.set_meals)
    ]
    uow.session.add_all(meals)
    return menu, meals


async def copy_menus(uow: UnitOfWork, canteen: Canteen, data: MenuCopy) -> list[tuple[Menu, list[SetMeal]]]:
    """Reuse a week's menus: drafts on the target days with the same set meals; days that already have a menu
    for a slot keep it."""
    if data.to_date < config.today():
        raise invalid(
            "meal_date_in_past",
            "Menus are for today or later",
            _t("{to_date} has passed.", to_date=data.to_date),
            field="to_date",
            message="in the past",
        )
    shift = data.to_date - data.from_date
    source = await _menus_of_days(uow, canteen, data.from_date, data.days)
    targets = {(m.meal_date, m.slot) for m in await _menus_of_days(uow, canteen, data.to_date, data.days)}
    meals = await meals_of(uow, [m.id for m in source])
    created = []
    for menu in sorted(source, key=lambda m: (m.meal_date, SLOT_RANK[m.slot])):
        day = menu.meal_date + shift
        if (day, menu.slot) in targets or day < config.today():
            continue
        copy = Menu(canteen_id=canteen.id, meal_date=day, slot=menu.slot, capacity=menu.capacity, note=menu.note)
        uow.session.add(copy)
        await uow.session.flush()
        copied = [
            SetMeal(
                menu_id=copy.id,
                position=m.position,
                name=m.name,
                kind=m.kind,
                price_fen=m.price_fen,
                dishes=list(m.dishes),
                tags=list(m.tags),
            )
            for m in meals[menu.id]
        ]
        uow.session.add_all(copied)
        created.append((copy, copied))
    return created


async def _menus_of_days(uow: UnitOfWork, canteen: Canteen, first: date, days: int) -> list[Menu]:
    """The canteen's menus of ``days`` days from ``first`` on."""
    query = select(Menu).where(
        Menu.canteen_id == canteen.id, Menu.meal_date >= first, Menu.meal_date < first + timedelta(days=days)
    )
    return list((await uow.session.execute(query)).scalars())


async def get_menu(uow: UnitOfWork, menu_id: UUID, *, for_update: bool = False) -> Menu:
    menu = await uow.session.get(Menu, menu_id, with_for_update=for_update and uow.db.is_postgres)
    if menu is None:
        raise not_found("menu", menu_id)
    return menu


async def visible_menu(uow: UnitOfWork, who: Principal | None, menu_id: UUID) -> Menu:
    """A published menu, for anyone; a draft only for its canteen's staff. Anyone else gets the 404 a missing
    menu gets (a draft's existence does not leak)."""
    menu = await get_menu(uow, menu_id)
    if menu.status != MenuStatus.published:
        canteen = await find_canteen(uow, menu.canteen_id)
        ensure_visible(who is not None and canteen is not None and access.manages(who, canteen), "menu", menu_id)
    return menu


def publish(canteen: Canteen, menu: Menu) -> None:
    if canteen.status != CanteenStatus.open:
        raise wrong_status(
            "canteen_not_open",
            _t("{canteen} is {status}; open it before publishing menus.", canteen=canteen.name, status=canteen.status),
            current_status=canteen.status,
        )
    if menu.status != MenuStatus.published:
        menu.status = MenuStatus.published
        menu.published_at = utcnow()
        touch(menu)


async def publish_range(uow: UnitOfWork, canteen: Canteen, date_from: date, date_to: date) -> list[Menu]:
    query = select(Menu).where(
        Menu.canteen_id == canteen.id,
        Menu.meal_date >= date_from,
        Menu.meal_date <= date_to,
        Menu.status == MenuStatus.draft,
    )
    menus = list((await uow.session.execute(query)).scalars())
    for menu in menus:
        publish(canteen, menu)
    return menus


async def set_capacity(uow: UnitOfWork, menu: Menu, capacity: int) -> Menu:
    if capacity < menu.booked:
        raise conflict(
            "capacity_below_booked", _t("{booked} meals are booked already.", booked=menu.booked), booked=menu.booked
        )
    menu.capacity = capacity
    touch(menu)
    return menu


def _slot_rank(slot: Any) -> Any:
    return sa.case(SLOT_RANK, value=slot, else_=9)


@lru_cache(maxsize=32)
def _menu_page_statement(by_id: bool, drafts: bool, by_slot: bool, after_cursor: bool) -> sa.Select[Any]:
    """The canteen (no row: no such canteen) with a page of its menus (``:limit``, by date and slot) and their set
    meals, in one round trip. Built once per filter combination with bound parameters, so SQLAlchemy compiles
    it once."""
    this_canteen = (CANTEENS.c.id if by_id else CANTEENS.c.code) == sa.bindparam("canteen")
    rank = _slot_rank(MENUS.c.slot)
    page = sa.select(*MENUS.c, rank.label("rank")).where(
        MENUS.c.canteen_id == sa.select(CANTEENS.c.id).where(this_canteen).scalar_subquery(),
        MENUS.c.meal_date >= sa.bindparam("date_from"),
        MENUS.c.meal_date <= sa.bindparam("date_to"),
    )
    if not drafts:
        page = page.where(MENUS.c.status == MenuStatus.published.value)
    if by_slot:
        page = page.where(MENUS.c.slot == sa.bindparam("slot"))
    if after_cursor:
        page = page.where(
            sa.tuple_(MENUS.c.meal_date, rank)
            > sa.tuple_(sa.bindparam("cursor_date", type_=sa.Date()), sa.bindparam("cursor_rank", type_=sa.Integer()))
        )
    menus = page.order_by(MENUS.c.meal_date, rank).limit(sa.bindparam("limit", type_=sa.Integer())).subquery("page")
    meals = [SET_MEALS.c[name].label(f"meal_{name}") for name in ("id", "name", "kind", "price_fen", "dishes", "tags")]
    return (
        sa.select(CANTEENS.c.id.label("found"), menus, *meals)
        .select_from(CANTEENS)
        .outerjoin(menus, menus.c.canteen_id == CANTEENS.c.id)
        .outerjoin(SET_MEALS, SET_MEALS.c.menu_id == menus.c.id)
        .where(this_canteen)
        .order_by(menus.c.meal_date, menus.c.rank, SET_MEALS.c.position)
    )


async def menu_page(
    uow: UnitOfWork,
    canteen: str,
    filters: MenuFilters,
    page: PageRequest,
    *,
    dates: tuple[date, date],
    needs: Sequence[str] | None = None,
    dislikes: Sequence[str] = (),
) -> dict[str, Any]:
    """A page of the menus of ``canteen`` (id or code; 404 if there is none) as the plain data of
    ``Page[MenuPublic]`` (same fields, same order), read with their set meals in one round trip. Built straight
    from the rows: the data was validated when it was written, and validating ~150 nested models per page
    again cost more than the query.

    ``dates`` is the filters' range with its defaults; ``needs`` and ``dislikes`` are what the filters' diner or
    needs stand for (``None``: nobody's, no set meal is judged)."""
    by_id, key = canteen_key(canteen)
    date_from, date_to = dates
    params: dict[str, Any] = {"canteen": key, "date_from": date_from, "date_to": date_to, "limit": page.limit + 1}
    if filters.slot is not None:
        params["slot"] = filters.slot.value
    if page.cursor:
        try:
            d, r = decode_cursor(page.cursor, date, int)
        except Problem:
            await canteen_row(uow, canteen)  # an unknown canteen is a 404 before a bad cursor
            raise
        params["cursor_date"], params["cursor_rank"] = d, r
    statement = _menu_page_statement(by_id, filters.include_drafts, filters.slot is not None, bool(page.cursor))
    rows = await uow.fetch(statement, params)
    if not rows:
        raise not_found("canteen", canteen)
    menus: list[dict[str, Any]] = []
    last: Any = None
    for row in rows:
        if row.id is None:  # the canteen has no menus in the range
            continue
        if row.id != last:
            last = row.id
            menus.append(
                {
                    "id": row.id,
                    "canteen_id": row.canteen_id,
                    "meal_date": row.meal_date,
                    "slot": row.slot,
                    "status": row.status,
                    "capacity": row.capacity,
                    "booked": row.booked,
                    "remaining": max(row.capacity - row.booked, 0),
                    "note": row.note,
                    "published_at": row.published_at,
                    "set_meals": [],
                }
            )
        if row.meal_id is None:
            continue
        meal = {
            "name": row.meal_name,
            "kind": row.meal_kind,
            "price_fen": row.meal_price_fen,
            "dishes": [_dish(d) for d in row.meal_dishes],
            "tags": row.meal_tags,
            "id": row.meal_id,
            "suitable": None,
            "conflicts": [],
        }
        if needs is not None:
            conflicts = conflicts_of(row.meal_name, row.meal_tags, row.meal_dishes, needs, dislikes)
            meal.update(suitable=not conflicts, conflicts=conflicts)
            if filters.only_suitable and conflicts:
                continue
        menus[-1]["set_meals"].append(meal)
    has_more = len(menus) > page.limit
    menus = menus[: page.limit]
    next_cursor = (
        encode_cursor(menus[-1]["meal_date"].isoformat(), SLOT_RANK[menus[-1]["slot"]]) if has_more and menus else None
    )
    return {"items": menus, "next_cursor": next_cursor}


def _dish(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored dish as ``Dish`` serializes it (its fields, in order, defaults filled)."""
    return {
        "name": stored.get("name", ""),
        "tags": stored.get("tags", []),
        "ingredients": stored.get("ingredients", []),
    }


def week_from(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=6)
