"""What the kitchen reads each day: the counts per slot and set meal (with dietary needs), and the delivery
list. Aggregated in SQL or over one day's rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import select

from minsheng.platform.pagination import Keyset, Page, PageRequest
from minsheng.platform.privacy import mask_phone
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen.canteens import SLOT_RANK
from services.canteen.models import Canteen, Diner, Fulfilment, Menu, Order, OrderStatus

ORDERS = table_of(Order)
DINERS = table_of(Diner)
_SLOT_RANK = sa.case(SLOT_RANK, value=ORDERS.c.slot, else_=9).label("slot_rank")
_STOPS_BY_SLOT = Keyset((_SLOT_RANK, ORDERS.c.id), kinds=(int, UUID), descending=False)


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


class DeliveryStop(BaseModel):
    order_id: UUID
    slot: str
    diner_id: UUID
    diner_name: str
    phone: str | None
    delivery_address: str | None
    deliver_by: Any
    set_meal_name: str
    dietary: list[str]
    note: str | None
    status: str
    pickup_code: str
    rider_task_id: UUID | None


async def delivery_list(
    uow: UnitOfWork, canteen: Canteen, day: date, slot: str | None, page: PageRequest
) -> Page[DeliveryStop]:
    query = (
        sa.select(ORDERS, DINERS.c.name.label("diner_name"), DINERS.c.phone.label("diner_phone"), _SLOT_RANK)
        .join(DINERS, DINERS.c.id == ORDERS.c.diner_id)
        .where(
            ORDERS.c.canteen_id == canteen.id,
            ORDERS.c.meal_date == day,
            ORDERS.c.fulfilment == Fulfilment.delivery.value,
            ORDERS.c.status != OrderStatus.cancelled.value,
        )
    )
    if slot is not None:
        query = query.where(ORDERS.c.slot == slot)
    rows = list((await uow.session.execute(_STOPS_BY_SLOT.query(query, page))).all())
    return _STOPS_BY_SLOT.page(rows, page).map(_delivery_stop)


def _delivery_stop(row: Any) -> DeliveryStop:
    return DeliveryStop(
        order_id=row.id,
        slot=row.slot,
        diner_id=row.diner_id,
        diner_name=row.diner_name,
        phone=mask_phone(row.diner_phone),
        delivery_address=row.delivery_address,
        deliver_by=row.deliver_by,
        set_meal_name=row.set_meal_name,
        dietary=row.dietary or [],
        note=row.note,
        status=row.status,
        pickup_code=row.pickup_code,
        rider_task_id=row.rider_task_id,
    )
