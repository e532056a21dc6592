"""Cancelling a booked order: by the diner or family before the cut-off, by staff at any time. Use cases take a
unit of work and never commit."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.canteen import DeliveryCancelled
from minsheng.platform.auth import Principal
from minsheng.platform.errors import conflict, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.access import Relation
from services.canteen.booking import release_seat
from services.canteen.deliveries import family_notice
from services.canteen.models import Fulfilment, LineStatus, MealSlotRow, Order, OrderStatus
from services.canteen.orders import LINES, cutoff_at, load_order, move_to


async def cancel(uow: UnitOfWork, who: Principal, order_id: UUID, reason: str) -> Order:
    """Cancel the order; an order already cancelled is answered as it is, so a resend after a lost answer is
    safe (the seat is freed and the lines voided once)."""
    order, canteen, _, _, rel = await load_order(uow, who, order_id, for_update=True)
    if order.status == OrderStatus.cancelled:
        return order
    if order.status != OrderStatus.booked:
        raise wrong_status(
            "order_not_cancellable",
            _t("An order that is {status} cannot be cancelled.", status=order.status),
            current_status=order.status,
        )
    if rel != Relation.staff:
        slot = await uow.session.get(MealSlotRow, (canteen.id, order.slot))
        assert slot is not None
        closes = cutoff_at(slot, order.meal_date)
        if config.now() >= closes:
            raise conflict(
                "cancellation_closed",
                "Cancelling closed at the booking cut-off; call the canteen.",
                closed_at=closes.isoformat(),
            )
    await cancel_order(uow, order, reason=reason, actor=who.sub)
    return order


async def cancel_order(uow: UnitOfWork, order: Order, *, reason: str, actor: str) -> None:
    """Cancel a booked order: free its seat, void its subsidy lines, withdraw a delivery's rider task."""
    now = utcnow()
    move_to(order, OrderStatus.cancelled)
    order.cancelled_at, order.cancelled_by, order.cancel_reason = now, actor, reason[:200]
    await release_seat(uow, order.menu_id)
    await uow.session.execute(
        sa.update(LINES).where(LINES.c.order_id == order.id).values(status=LineStatus.cancelled.value)
    )
    if order.fulfilment == Fulfilment.delivery:
        uow.emit(
            DeliveryCancelled(
                order_id=order.id, reason=reason[:200], cancelled_at=now, **await family_notice(uow, order)
            )
        )
