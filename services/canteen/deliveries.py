"""Delivered meals: the day's delivery list, a rider on the way, the delivery done (by the rider's task or by
staff), and what the events tell the diner's family. Use cases take a unit of work and never commit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import col, select

from minsheng.contracts.canteen import OrderDelivered
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest
from minsheng.platform.privacy import mask_phone
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.canteens import SLOT_RANK
from services.canteen.models import Canteen, Diner, FamilyMember, Fulfilment, Order, OrderStatus
from services.canteen.orders import ORDERS, load_order, move_to

DINERS = table_of(Diner)
_SLOT_RANK = sa.case(SLOT_RANK, value=ORDERS.c.slot, else_=9).label("slot_rank")
_STOPS_BY_SLOT = Keyset((_SLOT_RANK, ORDERS.c.id), kinds=(int, UUID), descending=False)


class DeliveryStop(BaseModel):
    order_id: UUID
    slot: str
    diner_id: UUID
    diner_name: str
    phone: str | None
    delivery_address: str | None
    deliver_by: datetime | None
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


async def family_notice(uow: UnitOfWork, order: Order) -> dict[str, Any]:
    """What a delivery event carries so notify can tell the diner's family: the diner, the meal and the family
    members' logins (never their phones)."""
    subjects = (
        await uow.session.execute(
            select(FamilyMember.subject)
            .where(FamilyMember.diner_id == order.diner_id)
            .order_by(col(FamilyMember.subject))
        )
    ).scalars()
    return {
        "diner_id": order.diner_id,
        "meal_date": order.meal_date,
        "slot": order.slot,
        "family_subjects": list(subjects),
    }


async def mark_delivered(uow: UnitOfWork, order_id: UUID, *, task_id: UUID, at: datetime) -> Order | None:
    """A rider completed the delivery task. Idempotent: a delivered order stays as it is."""
    order = await uow.session.get(Order, order_id, with_for_update=uow.db.is_postgres)
    if order is None or order.fulfilment != Fulfilment.delivery:
        return None
    if order.status != OrderStatus.booked:
        return None  # already delivered, or cancelled before the rider got there: nothing to record
    move_to(order, OrderStatus.delivered)
    order.delivered_at, order.rider_task_id = at, task_id
    uow.emit(
        OrderDelivered(order_id=order.id, delivered_at=at, rider_task_id=task_id, **await family_notice(uow, order))
    )
    return order


async def rider_on_the_way(uow: UnitOfWork, order_id: UUID, *, task_id: UUID, at: datetime) -> Order | None:
    """A rider claimed the delivery task: the elder's app can say the meal is on its way. The latest claim wins
    (a rider may give a task back and another take it)."""
    order = await uow.session.get(Order, order_id, with_for_update=uow.db.is_postgres)
    if order is None or order.fulfilment != Fulfilment.delivery or order.status != OrderStatus.booked:
        return None
    if order.rider_claimed_at is not None and at <= order.rider_claimed_at:
        return None
    order.rider_task_id, order.rider_claimed_at = task_id, at
    order.updated_at = utcnow()
    return order


async def mark_delivered_by_staff(uow: UnitOfWork, who: Principal, order_id: UUID) -> Order:
    """The canteen confirms a delivery by hand (the rider's task did not report it): a booked delivery order
    only."""
    order, canteen, *_ = await load_order(uow, who, order_id, for_update=True)
    only_staff = Problem(403, "forbidden_role", "Canteen staff only", "Only the canteen confirms deliveries.")
    ensure(access.manages(who, canteen), only_staff)
    if order.fulfilment != Fulfilment.delivery or order.status != OrderStatus.booked:
        raise wrong_status(
            "order_not_deliverable",
            _t(
                "A {fulfilment} order that is {status} cannot be confirmed delivered.",
                fulfilment=order.fulfilment,
                status=order.status,
            ),
            current_status=order.status,
        )
    at = config.now()
    move_to(order, OrderStatus.delivered)
    order.delivered_at = at
    uow.emit(OrderDelivered(order_id=order.id, delivered_at=at, rider_task_id=None, **await family_notice(uow, order)))
    return order
