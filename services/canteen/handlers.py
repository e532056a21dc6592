"""What the canteen service does when other services' events arrive (inside the consumer's unit of work,
committed together with the inbox row, so a redelivered event changes nothing)."""

from __future__ import annotations

from uuid import UUID

from minsheng.contracts.base import IntegrationEvent, Origin
from minsheng.contracts.points import TaskClaimed, TaskCompleted
from minsheng.contracts.visits import ResidentStatusChanged, WelfareCheckCompleted
from minsheng.platform.consumer import Handler, hand_to
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.canteen import care, deliveries


def _our_order(origin: Origin | None) -> UUID | None:
    if origin is None or origin.service != "canteen" or origin.kind != "order":
        return None
    try:
        return UUID(origin.id)
    except ValueError:
        return None


async def on_task_claimed(event: TaskClaimed, envelope: CloudEvent, uow: UnitOfWork) -> None:
    """A rider took a delivery task the canteen asked for: the meal is on its way."""
    order_id = _our_order(event.origin)
    if order_id is not None:
        await deliveries.rider_on_the_way(uow, order_id, task_id=event.task_id, at=event.claimed_at)


async def on_task_completed(event: TaskCompleted, envelope: CloudEvent, uow: UnitOfWork) -> None:
    """A rider finished a delivery task the canteen asked for: the order is delivered (once)."""
    order_id = _our_order(event.origin)
    if order_id is not None:
        await deliveries.mark_delivered(uow, order_id, task_id=event.task_id, at=event.completed_at)


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    TaskClaimed: on_task_claimed,
    TaskCompleted: on_task_completed,
    ResidentStatusChanged: hand_to(care.apply_resident_status),
    WelfareCheckCompleted: hand_to(care.record_welfare_check),
}
