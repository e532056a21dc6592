"""What the kitchen reads each day: the counts per slot and set meal (with dietary needs). Aggregated in SQL or
over one day's rows (the day's delivery list is in ``deliveries``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import select

from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen.canteens import SLOT_RANK
from services.canteen.models import Canteen, Menu, Order, OrderStatus

ORDERS = table_of(Order)


class SetMealCount(BaseModel):
    set_meal_id: UUID
    name: str
    count: int
    dietary: dict[str, int]


class SlotCounts(BaseModel):
    slot: str
    menu_id: UUID | None
    capacity: int
    booked: int
    to_prepare: int
    by_status: dict[str, int]
    by_fulfilment: dict[str, int]
    dietary: dict[str, int]
    set_meals: list[SetMealCount]


class KitchenSheet(BaseModel):
    canteen_id: UUID
    meal_date: date
    slots: list[SlotCounts]


async def kitchen_sheet(uow: UnitOfWork, canteen: Canteen, day: date) -> KitchenSheet:
    rows = (
        await uow.session.execute(
            sa.select(
                ORDERS.c.slot,
                ORDERS.c.set_meal_id,
                ORDERS.c.set_meal_name,
                ORDERS.c.fulfilment,
                ORDERS.c.status,
                ORDERS.c.dietary,
            ).where(
                ORDERS.c.canteen_id == canteen.id,
                ORDERS.c.meal_date == day,
                ORDERS.c.status != OrderStatus.cancelled.value,
            )
        )
    ).all()
    menus = {
        m.slot: m
        for m in (
            await uow.session.execute(select(Menu).where(Menu.canteen_id == canteen.id, Menu.meal_date == day))
        ).scalars()
    }
    by_slot: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_slot[r.slot].append(r)
    slots = []
    for slot in sorted(set(by_slot) | set(menus), key=lambda s: SLOT_RANK.get(s, 9)):
        items = by_slot[slot]
        meals: dict[UUID, tuple[str, Counter[str], int]] = {}
        for r in items:
            name, diet, n = meals.get(r.set_meal_id, (r.set_meal_name, Counter(), 0))
            diet.update(r.dietary or [])
            meals[r.set_meal_id] = (name, diet, n + 1)
        menu = menus.get(slot)
        slots.append(
            SlotCounts(
                slot=slot,
                menu_id=menu.id if menu else None,
                capacity=menu.capacity if menu else 0,
                booked=menu.booked if menu else len(items),
                to_prepare=len(items),
                by_status=dict(Counter(r.status for r in items)),
                by_fulfilment=dict(Counter(r.fulfilment for r in items)),
                dietary=dict(sum((Counter(r.dietary or []) for r in items), Counter())),
                set_meals=[
                    SetMealCount(set_meal_id=k, name=v[0], count=v[2], dietary=dict(v[1]))
                    for k, v in sorted(meals.items(), key=lambda kv: kv[1][0])
                ],
            )
        )
    return KitchenSheet(canteen_id=canteen.id, meal_date=day, slots=slots)
