"""Booking a meal: in advance (one or several), or a walk-in at the counter. Use cases take a unit of work and
never commit.

The hot path is a handful of round trips: lock the diner (PostgreSQL), read menu + set meal + slot in one join,
claim a seat with one conditional UPDATE (``booked < capacity``), read the rules in force (and cap usage only if
a matching rule has caps), then Core INSERTs for the order, its subsidy lines and the outbox row. Capacity holds
under any concurrency because the seat is claimed by the UPDATE itself; "one subsidised meal per diner per slot"
holds because of a partial unique index.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import select

from minsheng.contracts.canteen import DeliveryRequested
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, conflict, invalid, not_found, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.access import Relation
from services.canteen.diners import load_diner, new_code
from services.canteen.models import (
    Canteen,
    CanteenStatus,
    Diner,
    DinerStatus,
    FamilyMember,
    Fulfilment,
    MealSlotRow,
    Menu,
    MenuStatus,
    OrderBatchCreate,
    OrderChannel,
    OrderCreate,
    OrderPublic,
    OrderStatus,
    Payer,
    SetMeal,
    WalkInCreate,
)
from services.canteen.orders import LINES, MENUS, ORDERS, cutoff_at, deliver_by, order_row_public, serve_window
from services.canteen.subsidy import line_public, quote

# The statements of a booking, built once (bound parameters), so the fast path compiles each once.
_SET_MEALS, _CANTEENS, _SLOTS = table_of(SetMeal), table_of(Canteen), table_of(MealSlotRow)
# Menu, set meal, canteen and slot in one row: each table's columns under its own prefix.
_OFFER_PARTS = (("m_", MENUS), ("s_", _SET_MEALS), ("c_", _CANTEENS), ("t_", _SLOTS))
_OFFER = (
    sa.select(*(column.label(prefix + column.name) for prefix, table in _OFFER_PARTS for column in table.c))
    .select_from(
        MENUS.join(_SET_MEALS, _SET_MEALS.c.menu_id == MENUS.c.id)
        .join(_CANTEENS, _CANTEENS.c.id == MENUS.c.canteen_id)
        .join(_SLOTS, sa.and_(_SLOTS.c.canteen_id == MENUS.c.canteen_id, _SLOTS.c.slot == MENUS.c.slot))
    )
    .where(
        MENUS.c.id == sa.bindparam("menu_id", type_=MENUS.c.id.type),
        _SET_MEALS.c.id == sa.bindparam("set_meal_id", type_=_SET_MEALS.c.id.type),
    )
)
_CLAIM_SEAT = (
    sa.update(MENUS)
    .where(MENUS.c.id == sa.bindparam("b_menu", type_=MENUS.c.id.type), MENUS.c.booked < MENUS.c.capacity)
    .values(booked=MENUS.c.booked + 1)
    .returning(MENUS.c.booked)
)


@functools.cache
def _insert_row(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    """A one-row INSERT of these columns (bound parameters ``v_<column>``), built once per column set."""
    return sa.insert(table).values({c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})


async def _insert(uow: UnitOfWork, table: sa.Table, row: dict[str, Any]) -> None:
    await uow.execute(_insert_row(table, tuple(row)), {f"v_{k}": v for k, v in row.items()})


_INSERT_LINES = sa.insert(LINES)


def _offer_parts(row: sa.Row[Any]) -> tuple[Any, ...]:
    """The joined row split into one read-only record per table, with the columns' names: what the use case
    reads of the ORM objects, without building (and tracking) four of them."""
    values = row._mapping
    return tuple(
        SimpleNamespace(**{c.name: values[prefix + c.name] for c in table.c}) for prefix, table in _OFFER_PARTS
    )


async def _offer(uow: UnitOfWork, menu_id: UUID, set_meal_id: UUID) -> tuple[Menu, SetMeal, Canteen, MealSlotRow]:
    row = await uow.fetchrow(_OFFER, {"menu_id": menu_id, "set_meal_id": set_meal_id})
    if row is None:
        raise Problem(
            404,
            "set_meal_not_found",
            "Set meal not found",
            _t("No set meal {set_meal_id} on menu {menu_id}.", set_meal_id=set_meal_id, menu_id=menu_id),
        )
    menu, meal, canteen, slot = _offer_parts(row)
    return menu, meal, canteen, slot


def _check_bookable(menu: Menu, canteen: Canteen, slot: MealSlotRow, channel: OrderChannel, now: datetime) -> None:
    if canteen.status != CanteenStatus.open:
        raise wrong_status(
            "canteen_not_open",
            _t("{canteen} is {status}.", canteen=canteen.name, status=canteen.status),
            current_status=canteen.status,
        )
    if menu.status != MenuStatus.published:
        raise wrong_status("menu_not_published", "This menu is not published yet.", current_status=menu.status)
    today = now.astimezone(config.tz()).date()
    if menu.meal_date < today:
        raise conflict("booking_closed", _t("{meal_date} has passed.", meal_date=menu.meal_date))
    _, until = serve_window(slot, menu.meal_date)
    if channel == OrderChannel.walk_in:
        if menu.meal_date != today:
            raise conflict("not_today", "Walk-ins are for today's menu.")
        return
    closes = cutoff_at(slot, menu.meal_date) if channel == OrderChannel.app else until
    if now >= closes:
        raise conflict(
            "booking_closed",
            _t(
                "Booking for {meal_date} {slot} closed at {closes_at}.",
                meal_date=menu.meal_date,
                slot=menu.slot,
                closes_at=closes.astimezone(config.tz()).isoformat(timespec="minutes"),
            ),
            closed_at=closes.isoformat(),
        )


async def _claim_seat(uow: UnitOfWork, menu: Menu) -> None:
    if await uow.fetchrow(_CLAIM_SEAT, {"b_menu": menu.id}) is None:
        raise conflict(
            "slot_full",
            _t(
                "All {capacity} meals for {meal_date} {slot} are booked.",
                capacity=menu.capacity,
                meal_date=menu.meal_date,
                slot=menu.slot,
            ),
            capacity=menu.capacity,
        )


async def release_seat(uow: UnitOfWork, menu_id: UUID) -> None:
    await uow.session.execute(
        sa.update(MENUS).where(MENUS.c.id == menu_id, MENUS.c.booked > 0).values(booked=MENUS.c.booked - 1)
    )


@dataclass(frozen=True)
class _Terms:
    """How an order is placed: through which channel, who pays, and where a delivery goes."""

    channel: OrderChannel
    payer: Payer
    delivery_address: str | None = None
    note: str | None = None


def _terms_for(rel: Relation, member: FamilyMember | None, delivery_address: str | None, note: str | None) -> _Terms:
    """A diner's own booking, staff's, or a family member's (who may be barred from ordering, or pay)."""
    if rel == Relation.family and member is not None and not member.can_order:
        raise Problem(403, "family_cannot_order", "Not allowed to order", "This family member may not order.")
    payer = Payer.family if rel == Relation.family and member is not None and member.can_pay else Payer.diner
    channel = OrderChannel.staff if rel == Relation.staff else OrderChannel.app
    return _Terms(channel, payer, delivery_address, note)


async def _place(
    uow: UnitOfWork,
    who: Principal,
    diner: Diner,
    offered: tuple[Menu, SetMeal, Canteen, MealSlotRow],
    terms: _Terms,
    *,
    fulfilment: Fulfilment,
    extra: bool,
) -> OrderPublic:
    menu, meal, canteen, slot = offered
    channel, payer, delivery_address, note = terms.channel, terms.payer, terms.delivery_address, terms.note
    if diner.status in (DinerStatus.deceased, DinerStatus.withdrawn):
        raise wrong_status(
            "diner_inactive", _t("This diner is {status}.", status=diner.status), current_status=diner.status
        )
    now = config.now()
    _check_bookable(menu, canteen, slot, channel, now)
    address = None
    if fulfilment == Fulfilment.delivery:
        if not diner.delivery_eligible:
            raise conflict("delivery_not_eligible", "This diner is not registered for delivery; ask the canteen.")
        address = delivery_address or diner.delivery_address
        if not address:
            raise invalid(
                "delivery_address_required",
                "Delivery address required",
                "Give delivery_address or record one on the diner.",
                field="delivery_address",
                message="required",
                error_type="missing",
            )
    if uow.db.is_postgres:
        # The diner's row lock (taken by the caller) already serialises this diner's orders, so the subsidy and
        # its caps can be read first; the seat is claimed last, keeping the hot menu row locked only for the
        # INSERTs and the COMMIT.
        computed = await quote(uow, diner, menu, meal, fulfilment, extra)
        await _claim_seat(uow, menu)
    else:
        # SQLite has no row locks: the seat UPDATE takes the database's write lock first, so what follows reads
        # a state no other booking can change before this one commits.
        await _claim_seat(uow, menu)
        computed = await quote(uow, diner, menu, meal, fulfilment, extra)
    served = channel == OrderChannel.walk_in
    order = _order_values(
        canteen_id=canteen.id,
        diner_id=diner.id,
        menu_id=menu.id,
        set_meal_id=meal.id,
        set_meal_name=meal.name,
        meal_date=menu.meal_date,
        slot=menu.slot,
        fulfilment=fulfilment.value,
        status=OrderStatus.served.value if served else OrderStatus.booked.value,
        channel=channel.value,
        is_extra=extra,
        price_fen=computed.price_fen,
        subsidy_fen=computed.subsidy_fen,
        elder_pays_fen=computed.elder_pays_fen,
        payer=payer.value,
        payer_subject=who.sub if payer == Payer.family else diner.subject,
        booked_by=who.sub,
        pickup_code=new_code(8),
        community=diner.community,
        compound=diner.compound,
        dietary=list(diner.dietary),
        delivery_address=address,
        deliver_by=deliver_by(slot, menu.meal_date) if address else None,
        note=note,
        checked_in_at=now if served else None,
        checked_in_by=who.sub if served else None,
    )
    try:
        await _insert(uow, ORDERS, order)
    except sa.exc.IntegrityError as exc:
        raise conflict(
            "already_booked",
            _t(
                "This diner already has a meal for {meal_date} {slot}; "
                "cancel it first, or order an unsubsidised extra meal (extra=true).",
                meal_date=menu.meal_date,
                slot=menu.slot,
            ),
        ) from exc
    lines = computed.line_rows(order_id=order["id"], diner_id=diner.id, canteen_id=canteen.id, meal_date=menu.meal_date)
    if len(lines) == 1:  # nothing reads it back: written at commit with the outbox row, one statement
        uow.insert_at_commit(LINES, lines[0])
    elif lines:
        await uow.session.execute(_INSERT_LINES, lines)
    if address is not None:
        uow.emit(
            DeliveryRequested(
                order_id=order["id"],
                canteen_id=canteen.id,
                canteen_name=canteen.name,
                meal_date=menu.meal_date,
                slot=menu.slot,  # type: ignore[arg-type]
                deliver_by=order["deliver_by"],
                pickup_address=canteen.address,
                delivery_address=address,
                community=diner.community,
                compound=diner.compound,
                points=canteen.delivery_points,
            )
        )
    return order_row_public(order, [line_public(rule, amount) for rule, amount in computed.lines])


def _order_values(**values: Any) -> dict[str, Any]:
    """Every column of a new order row (what ``Order(...).model_dump()`` gave, without building the ORM object)."""
    at = utcnow()
    return {
        "id": uuid7(),
        **values,
        "delivered_at": None,
        "rider_task_id": None,
        "rider_claimed_at": None,
        "cancelled_at": None,
        "cancelled_by": None,
        "cancel_reason": None,
        "created_at": at,
        "updated_at": at,
    }


async def book(uow: UnitOfWork, who: Principal, data: OrderCreate) -> OrderPublic:
    diner, _, _, rel, member = await load_diner(uow, who, data.diner_id, for_update=True, with_family=False)
    offered = await _offer(uow, data.menu_id, data.set_meal_id)
    terms = _terms_for(rel, member, data.delivery_address, data.note)
    return await _place(uow, who, diner, offered, terms, fulfilment=data.fulfilment, extra=data.extra)


async def book_many(uow: UnitOfWork, who: Principal, data: OrderBatchCreate) -> list[OrderPublic]:
    """Several meals for one diner in one transaction (all or none). Seats are claimed in (date, slot) order so
    two batches never wait on each other's menus in opposite orders."""
    diner, _, _, rel, member = await load_diner(uow, who, data.diner_id, for_update=True, with_family=False)
    terms = _terms_for(rel, member, data.delivery_address, data.note)
    offers = []
    for i, item in enumerate(data.items):
        try:
            offers.append((i, item, *await _offer(uow, item.menu_id, item.set_meal_id)))
        except Problem as exc:
            raise _for_item(exc, i) from exc
    placed = []
    for i, item, menu, meal, canteen, slot in sorted(offers, key=lambda o: (o[2].meal_date, o[2].slot, o[0])):
        try:
            offered = (menu, meal, canteen, slot)
            placed.append((i, await _place(uow, who, diner, offered, terms, fulfilment=item.fulfilment, extra=False)))
        except Problem as exc:
            raise _for_item(exc, i) from exc
    return [p for _, p in sorted(placed, key=lambda x: x[0])]


def _for_item(exc: Problem, index: int) -> Problem:
    return Problem(
        exc.status,
        exc.code,
        exc.title,
        _t("items[{index}]: {detail}", index=index, detail=exc.detail or exc.title),
        exc.headers,
        item=index,
        **exc.extra,
    )


async def diner_by_card(uow: UnitOfWork, card_code: str, *, for_update: bool = False) -> Diner:
    query = select(Diner).where(Diner.card_code == card_code.strip().upper())
    if for_update and uow.db.is_postgres:
        query = query.with_for_update()
    diner = (await uow.session.execute(query)).scalar_one_or_none()
    if diner is None:
        raise not_found("diner", card_code)
    return diner


async def walk_in(uow: UnitOfWork, who: Principal, canteen: Canteen, data: WalkInCreate) -> OrderPublic:
    """A diner who did not book eats today: staff record it at the counter (served at once)."""
    if data.card_code is not None:
        diner = await diner_by_card(uow, data.card_code, for_update=True)
    else:
        assert data.diner_id is not None
        found = await uow.session.get(Diner, data.diner_id, with_for_update=uow.db.is_postgres)
        if found is None:
            raise not_found("diner", data.diner_id)
        diner = found
    meal = await uow.session.get(SetMeal, data.set_meal_id)
    if meal is None:
        raise not_found("set_meal", data.set_meal_id)
    menu, meal, offered_at, slot = await _offer(uow, meal.menu_id, meal.id)
    if offered_at.id != canteen.id:
        raise not_found("set_meal", data.set_meal_id)
    at_the_counter = _Terms(OrderChannel.walk_in, Payer.diner)
    return await _place(
        uow, who, diner, (menu, meal, canteen, slot), at_the_counter, fulfilment=data.fulfilment, extra=data.extra
    )
