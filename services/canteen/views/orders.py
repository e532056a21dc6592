"""Routes under ``/canteen/orders``: booking (retry-safe), listing, cancelling, checking in and confirming
deliveries."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minsheng.platform.idempotency import IdempotencyKey
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.canteen import booking, cancellation, counter, deliveries, orders
from services.canteen.models import (
    Cancellation,
    OrderBatchCreate,
    OrderCreate,
    OrderFilters,
    OrderPublic,
)
from services.canteen.views.deps import Caller, Staff, commit, idempotent_order, order_out

router = APIRouter(tags=["orders"])


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderPublic,
    summary="Book a meal (the elder, family or staff); delivery orders call a rider",
)
async def book(body: OrderCreate, uow: UoW, who: Caller, idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    async def action() -> tuple[int, OrderPublic]:
        return 201, await booking.book(uow, who, body)

    return await idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-order", body, action)


@router.post(
    "/orders/batch",
    status_code=201,
    response_model=list[OrderPublic],
    summary="Book several meals for one diner at once (a week ahead): all of them, or none",
)
async def book_many(
    body: OrderBatchCreate, uow: UoW, who: Caller, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    async def action() -> tuple[int, list[OrderPublic]]:
        return 201, await booking.book_many(uow, who, body)

    return await idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-order-batch", body, action)


@router.get("/orders", summary="Your diners' orders; staff: a canteen's (canteen_id) or a diner's (diner_id)")
async def list_orders(
    uow: UoW, who: Caller, filters: Annotated[OrderFilters, Query()], page: PageQuery
) -> Page[OrderPublic]:
    found = await orders.list_orders(uow, who, filters, page)
    lines = await orders.lines_of(uow, [o.id for o in found.items])
    return found.map(lambda o: orders.order_public(o, lines[o.id]))


@router.get("/orders/{order_id}", summary="One order with its subsidy lines and who funds what")
async def get_order(order_id: UUID, uow: UoW, who: Caller) -> OrderPublic:
    return await order_out(uow, order_id, who)


@router.post(
    "/orders/{order_id}/cancel",
    summary="Cancel before the cut-off (staff: until served); frees the seat, withdraws a delivery",
)
async def cancel(order_id: UUID, uow: UoW, who: Caller, body: Cancellation | None = None) -> OrderPublic:
    await cancellation.cancel(uow, who, order_id, (body or Cancellation()).reason)
    await commit(uow)
    return await order_out(uow, order_id, who)


@router.post("/orders/{order_id}/check-in", summary="Staff: the diner collected or sat down for this meal")
async def check_in(order_id: UUID, uow: UoW, who: Staff) -> OrderPublic:
    await counter.check_in(uow, who, order_id)
    await commit(uow)
    return await order_out(uow, order_id, who)


@router.post(
    "/orders/{order_id}/delivered",
    summary="Staff: confirm a delivery by hand (when the rider's task did not report it)",
)
async def confirm_delivered(order_id: UUID, uow: UoW, who: Staff) -> OrderPublic:
    await deliveries.mark_delivered_by_staff(uow, who, order_id)
    await commit(uow)
    return await order_out(uow, order_id, who)
