"""At the canteen counter: checking a booked meal in (by order, pickup code or diner card), and the no-shows of
past days. Use cases take a unit of work and never commit."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, conflict, invalid, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.models import Canteen, Diner, Fulfilment, MealSlotRow, Order, OrderStatus
from services.canteen.orders import ORDERS, current_slot, load_order, move_to


def serve(order: Order, who: Principal) -> Order:
    if order.status != OrderStatus.booked:
        raise wrong_status(
            "order_not_checkable",
            _t("An order that is {status} cannot be checked in.", status=order.status),
            current_status=order.status,
        )
    if order.fulfilment == Fulfilment.delivery:
        raise conflict("delivery_order", "Delivery orders are handed to riders, not checked in.")
    if order.meal_date != config.today():
        raise conflict("not_today", _t("This order is for {meal_date}.", meal_date=order.meal_date))
    move_to(order, OrderStatus.served)
    order.checked_in_at, order.checked_in_by = config.now(), who.sub
    return order


async def check_in(uow: UnitOfWork, who: Principal, order_id: UUID) -> Order:
    order, canteen, _, _, _ = await load_order(uow, who, order_id, for_update=True)
    only_staff = Problem(403, "forbidden_role", "Canteen staff only", "Check-in is done at the canteen counter.")
    ensure(access.manages(who, canteen), only_staff)
    return serve(order, who)


async def check_in_by_code(uow: UnitOfWork, who: Principal, canteen: Canteen, code: str, slot: str | None) -> Order:
    """Scan at the counter: the order's pickup code, or the diner's card (their booking for the slot now)."""
    code = code.strip().upper()
    today = config.today()
    if slot is None:
        slots = [
            s
            for s in (
                await uow.session.execute(select(MealSlotRow).where(MealSlotRow.canteen_id == canteen.id))
            ).scalars()
            if s.active
        ]
        slot = current_slot(slots, config.now())
        if slot is None:
            raise invalid(
                "slot_required",
                "No meal is being served now",
                "Say which slot you are serving.",
                field="slot",
                message="required outside serving hours",
                error_type="missing",
            )
    query = select(Order).where(
        Order.canteen_id == canteen.id, Order.meal_date == today, Order.slot == slot, Order.status == OrderStatus.booked
    )
    by_code = query.where(Order.pickup_code == code)
    if uow.db.is_postgres:
        by_code = by_code.with_for_update()
    order = (await uow.session.execute(by_code)).scalars().first()
    if order is None:
        diner = (await uow.session.execute(select(Diner).where(Diner.card_code == code))).scalar_one_or_none()
        if diner is None:
            raise Problem(
                404,
                "code_not_recognised",
                "Code not recognised",
                "Neither a pickup code for this meal nor a diner card.",
            )
        by_diner = query.where(Order.diner_id == diner.id).order_by(col(Order.is_extra))
        if uow.db.is_postgres:
            by_diner = by_diner.with_for_update()
        order = (await uow.session.execute(by_diner)).scalars().first()
        if order is None:
            raise Problem(
                404,
                "no_booking",
                "No booking for this meal",
                _t("{diner} has no booking for {slot} today: record a walk-in.", diner=diner.name, slot=slot),
                diner_id=str(diner.id),
                card_code=diner.card_code,
            )
    return serve(order, who)


async def sweep_no_shows(uow: UnitOfWork, today: date) -> int:
    """Bookings for past days nobody checked in become no-shows (deliveries wait for the rider's word)."""
    result = await uow.session.execute(
        sa.update(ORDERS)
        .where(
            ORDERS.c.status == OrderStatus.booked.value,
            ORDERS.c.meal_date < today,
            ORDERS.c.fulfilment != Fulfilment.delivery.value,
        )
        .values(status=OrderStatus.no_show.value, updated_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
