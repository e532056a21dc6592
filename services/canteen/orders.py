"""Ordering: advance booking, walk-ins and check-in, cancellation, delivery. Use cases take a unit of work and
never commit.

The hot path (booking) is a handful of round trips: lock the diner (PostgreSQL), read menu + set meal + slot in
one join, claim a seat with one conditional UPDATE (``booked < capacity``), read the rules in force (and cap
usage only if a matching rule has caps), then Core INSERTs for the order, its subsidy lines and the outbox row.
Capacity holds under any concurrency because the seat is claimed by the UPDATE itself; "one subsidised meal
per diner per slot" holds because of a partial unique index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.canteen import DeliveryCancelled, DeliveryRequested, OrderDelivered
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import Keyset, Page, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.access import Relation
from services.canteen.diners import family_of, load_diner, new_code
from services.canteen.models import (
    Canteen,
    CanteenStatus,
    Diner,
    DinerStatus,
    FamilyMember,
    Fulfilment,
    FundingShare,
    LineStatus,
    MealSlotRow,
    Menu,
    MenuStatus,
    Order,
    OrderBatchCreate,
    OrderChannel,
    OrderCreate,
    OrderPublic,
    OrderStatus,
    Payer,
    SetMeal,
    SubsidyLine,
    SubsidyLinePublic,
    WalkInCreate,
)
from services.canteen.subsidy import (
    Computation,
    MealContext,
    age_on,
    circumstances_on,
    compute_for,
    line_public,
)

ORDERS = table_of(Order)
LINES = table_of(SubsidyLine)
MENUS = table_of(Menu)


# --- time rules ---------------------------------------------------------------------------------------------------


def serve_window(slot: MealSlotRow, day: date) -> tuple[datetime, datetime]:
    return config.local_instant(day, slot.serve_from), config.local_instant(day, slot.serve_until)


def cutoff_at(slot: MealSlotRow, day: date) -> datetime:
    return config.local_instant(day, slot.serve_from) - timedelta(minutes=slot.cutoff_minutes)


def deliver_by(slot: MealSlotRow, day: date) -> datetime:
    if slot.deliver_by is not None:
        return config.local_instant(day, slot.deliver_by)
    return config.local_instant(day, slot.serve_from) + timedelta(hours=1)


def current_slot(slots: Iterable[MealSlotRow], at: datetime) -> str | None:
    """The slot being served around ``at`` (from 90 minutes before it opens to 30 after it closes)."""
    local = at.astimezone(config.tz())
    for s in slots:
        start, end = serve_window(s, local.date())
        if start - timedelta(minutes=90) <= local <= end + timedelta(minutes=30):
            return s.slot
    return None


# --- reading -----------------------------------------------------------------------------------------------------


async def lines_of(uow: UnitOfWork, order_ids: Iterable[UUID]) -> dict[UUID, list[SubsidyLine]]:
    ids = list(order_ids)
    out: dict[UUID, list[SubsidyLine]] = {i: [] for i in ids}
    if ids:
        rows = await uow.session.execute(select(SubsidyLine).where(col(SubsidyLine.order_id).in_(ids)))
        for line in rows.scalars():
            out[line.order_id].append(line)
    return out


def order_public(order: Order, lines: Sequence[SubsidyLine]) -> OrderPublic:
    return _order_public(
        order.model_dump(),
        [
            SubsidyLinePublic(
                rule_id=ln.rule_id,
                rule_key=ln.rule_key,
                rule_version=ln.rule_version,
                category=ln.category,
                funder=ln.funder,
                amount_fen=ln.amount_fen,
                status=LineStatus(ln.status),
            )
            for ln in lines
        ],
    )


def _order_public(order: dict[str, Any], lines: Sequence[SubsidyLinePublic]) -> OrderPublic:
    """An order (its column values) with its subsidy lines and who funds what."""
    by_funder: dict[str, int] = {}
    for ln in lines:
        by_funder[ln.funder] = by_funder.get(ln.funder, 0) + ln.amount_fen
    funding = [FundingShare(funder=f, amount_fen=a) for f, a in sorted(by_funder.items())]
    funding.append(FundingShare(funder=order["payer"], amount_fen=order["elder_pays_fen"]))
    return OrderPublic.model_validate(
        {**order, "subsidy_lines": sorted(lines, key=lambda x: x.rule_key), "funding": funding}
    )


async def load_order(
    uow: UnitOfWork,
    who: Principal,
    order_id: UUID,
    *,
    for_update: bool = False,
) -> tuple[Order, Canteen, Diner, list[FamilyMember], Relation | None]:
    order = await uow.session.get(Order, order_id, with_for_update=for_update and uow.db.is_postgres)
    if order is None:
        raise not_found("order", order_id)
    canteen = await uow.session.get(Canteen, order.canteen_id)
    diner = await uow.session.get(Diner, order.diner_id)
    assert canteen is not None and diner is not None
    home = canteen if diner.canteen_id == canteen.id else await uow.session.get(Canteen, diner.canteen_id)
    family = (await family_of(uow, [diner.id]))[diner.id]
    rel, _ = access.relation(who, diner, home, family)
    if access.manages(who, canteen):
        rel = Relation.staff
    if rel is None:
        raise not_found("order", order_id)
    return order, canteen, diner, family, rel


async def list_orders(
    uow: UnitOfWork,
    who: Principal,
    *,
    diner_id: UUID | None,
    canteen: Canteen | None,
    meal_date: date | None,
    status: OrderStatus | None,
    fulfilment: Fulfilment | None,
    limit: int,
    cursor: str | None,
) -> Page[Order]:
    query = select(Order)
    if diner_id is not None:
        await load_diner(uow, who, diner_id, with_family=False)  # 404 unless the caller may see this diner
        query = query.where(Order.diner_id == diner_id)
    if canteen is not None:
        query = query.where(Order.canteen_id == canteen.id)
    if diner_id is None and canteen is None:
        family_ids = select(FamilyMember.diner_id).where(FamilyMember.subject == who.sub)
        own = select(Diner.id).where(sa.or_(col(Diner.subject) == who.sub, col(Diner.id).in_(family_ids)))
        query = query.where(col(Order.diner_id).in_(own))
    if meal_date is not None:
        query = query.where(Order.meal_date == meal_date)
    if status is not None:
        query = query.where(Order.status == status)
    if fulfilment is not None:
        query = query.where(Order.fulfilment == fulfilment)
    return await keyset_page(uow.session, query, Keyset((Order.created_at, Order.id)), cursor, limit)


# --- booking -------------------------------------------------------------------------------------------------------

# The statements of a booking, built once (bound parameters), so SQLAlchemy compiles each once.
_OFFER = (
    select(Menu, SetMeal, Canteen, MealSlotRow)
    .join(SetMeal, col(SetMeal.menu_id) == col(Menu.id))
    .join(Canteen, col(Canteen.id) == col(Menu.canteen_id))
    .join(
        MealSlotRow,
        sa.and_(col(MealSlotRow.canteen_id) == col(Menu.canteen_id), col(MealSlotRow.slot) == col(Menu.slot)),
    )
    .where(col(Menu.id) == sa.bindparam("menu_id"), col(SetMeal.id) == sa.bindparam("set_meal_id"))
)
_CLAIM_SEAT = (
    sa.update(MENUS)
    .where(MENUS.c.id == sa.bindparam("menu_id"), MENUS.c.booked < MENUS.c.capacity)
    .values(booked=MENUS.c.booked + 1)
    .returning(MENUS.c.booked)
)
_INSERT_ORDER = sa.insert(ORDERS)
_INSERT_LINES = sa.insert(LINES)


async def _offer(uow: UnitOfWork, menu_id: UUID, set_meal_id: UUID) -> tuple[Menu, SetMeal, Canteen, MealSlotRow]:
    row = (await uow.session.execute(_OFFER, {"menu_id": menu_id, "set_meal_id": set_meal_id})).first()
    if row is None:
        raise Problem(
            404,
            "set_meal_not_found",
            "Set meal not found",
            _t("No set meal {set_meal_id} on menu {menu_id}.", set_meal_id=set_meal_id, menu_id=menu_id),
        )
    return row[0], row[1], row[2], row[3]


def _check_bookable(menu: Menu, canteen: Canteen, slot: MealSlotRow, channel: OrderChannel, now: datetime) -> None:
    if canteen.status != CanteenStatus.open:
        raise conflict("canteen_not_open", _t("{canteen} is {status}.", canteen=canteen.name, status=canteen.status))
    if menu.status != MenuStatus.published:
        raise conflict("menu_not_published", "This menu is not published yet.")
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
    claimed = (await uow.session.execute(_CLAIM_SEAT, {"menu_id": menu.id})).scalar_one_or_none()
    if claimed is None:
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


async def _release_seat(uow: UnitOfWork, menu_id: UUID) -> None:
    await uow.session.execute(
        sa.update(MENUS).where(MENUS.c.id == menu_id, MENUS.c.booked > 0).values(booked=MENUS.c.booked - 1)
    )


def subsidy_suspended(diner: Diner, day: date) -> bool:
    if diner.status in (DinerStatus.suspended, DinerStatus.deceased):
        return diner.subsidy_suspended_from is None or day >= diner.subsidy_suspended_from
    return diner.subsidy_suspended_from is not None and day >= diner.subsidy_suspended_from


async def quote(
    uow: UnitOfWork, diner: Diner, menu: Menu, meal: SetMeal, fulfilment: Fulfilment, extra: bool = False
) -> Computation:
    ctx = MealContext(
        meal_date=menu.meal_date,
        age=age_on(diner.birth_date, menu.meal_date),
        circumstances=circumstances_on(diner.circumstances, diner.birth_date, menu.meal_date),
        slot=menu.slot,
        fulfilment=fulfilment.value,
        meal_kind=meal.kind,
        canteen_id=str(menu.canteen_id),
        price_fen=meal.price_fen,
        suspended=subsidy_suspended(diner, menu.meal_date),
        extra=extra,
    )
    return await compute_for(uow, ctx, diner.id)


async def _place(
    uow: UnitOfWork,
    who: Principal,
    diner: Diner,
    menu: Menu,
    meal: SetMeal,
    canteen: Canteen,
    slot: MealSlotRow,
    *,
    fulfilment: Fulfilment,
    channel: OrderChannel,
    payer: Payer,
    extra: bool,
    delivery_address: str | None,
    note: str | None,
) -> OrderPublic:
    if diner.status in (DinerStatus.deceased, DinerStatus.withdrawn):
        raise conflict("diner_inactive", _t("This diner is {status}.", status=diner.status))
    now = config.now()
    _check_bookable(menu, canteen, slot, channel, now)
    address = None
    if fulfilment == Fulfilment.delivery:
        if not diner.delivery_eligible:
            raise conflict("delivery_not_eligible", "This diner is not registered for delivery; ask the canteen.")
        address = delivery_address or diner.delivery_address
        if not address:
            raise Problem(
                422,
                "delivery_address_required",
                "Delivery address required",
                "Give delivery_address or record one on the diner.",
                errors=[{"field": "delivery_address", "message": "required", "type": "missing"}],
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
        await uow.session.execute(_INSERT_ORDER, order)
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
    lines = [
        {
            "id": uuid7(),
            "order_id": order["id"],
            "diner_id": diner.id,
            "canteen_id": canteen.id,
            "meal_date": menu.meal_date,
            "rule_id": rule.id,
            "rule_key": rule.key,
            "rule_version": rule.version,
            "category": rule.category,
            "funder": rule.funder,
            "amount_fen": amount,
            "status": LineStatus.claimed.value,
        }
        for rule, amount in computed.lines
    ]
    if lines:  # one row: a plain execute, cheaper than the executemany path a list takes
        await uow.session.execute(_INSERT_LINES, lines[0] if len(lines) == 1 else lines)
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
    return _order_public(order, [line_public(rule, amount) for rule, amount in computed.lines])


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
    menu, meal, canteen, slot = await _offer(uow, data.menu_id, data.set_meal_id)
    if rel == Relation.family and member is not None and not member.can_order:
        raise Problem(403, "family_cannot_order", "Not allowed to order", "This family member may not order.")
    payer = Payer.family if rel == Relation.family and member is not None and member.can_pay else Payer.diner
    channel = OrderChannel.staff if rel == Relation.staff else OrderChannel.app
    return await _place(
        uow,
        who,
        diner,
        menu,
        meal,
        canteen,
        slot,
        fulfilment=data.fulfilment,
        channel=channel,
        payer=payer,
        extra=data.extra,
        delivery_address=data.delivery_address,
        note=data.note,
    )


async def book_many(uow: UnitOfWork, who: Principal, data: OrderBatchCreate) -> list[OrderPublic]:
    """Several meals for one diner in one transaction (all or none). Seats are claimed in (date, slot) order so
    two batches never wait on each other's menus in opposite orders."""
    diner, _, _, rel, member = await load_diner(uow, who, data.diner_id, for_update=True, with_family=False)
    if rel == Relation.family and member is not None and not member.can_order:
        raise Problem(403, "family_cannot_order", "Not allowed to order", "This family member may not order.")
    payer = Payer.family if rel == Relation.family and member is not None and member.can_pay else Payer.diner
    channel = OrderChannel.staff if rel == Relation.staff else OrderChannel.app
    offers = []
    for i, item in enumerate(data.items):
        try:
            offers.append((i, item, *await _offer(uow, item.menu_id, item.set_meal_id)))
        except Problem as exc:
            raise _for_item(exc, i) from exc
    placed = []
    for i, item, menu, meal, canteen, slot in sorted(offers, key=lambda o: (o[2].meal_date, o[2].slot, o[0])):
        try:
            placed.append(
                (
                    i,
                    await _place(
                        uow,
                        who,
                        diner,
                        menu,
                        meal,
                        canteen,
                        slot,
                        fulfilment=item.fulfilment,
                        channel=channel,
                        payer=payer,
                        extra=False,
                        delivery_address=data.delivery_address,
                        note=data.note,
                    ),
                )
            )
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
    return await _place(
        uow,
        who,
        diner,
        menu,
        meal,
        canteen,
        slot,
        fulfilment=data.fulfilment,
        channel=OrderChannel.walk_in,
        payer=Payer.diner,
        extra=data.extra,
        delivery_address=None,
        note=None,
    )


# --- after booking ---------------------------------------------------------------------------------------------


def _move(order: Order, status: OrderStatus) -> None:
    order.status = status.value
    order.updated_at = utcnow()


async def cancel(uow: UnitOfWork, who: Principal, order_id: UUID, reason: str) -> Order:
    order, canteen, _, _, rel = await load_order(uow, who, order_id, for_update=True)
    if order.status != OrderStatus.booked:
        raise conflict(
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


async def _for_family(uow: UnitOfWork, order: Order) -> dict[str, Any]:
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


async def cancel_order(uow: UnitOfWork, order: Order, *, reason: str, actor: str) -> None:
    """Cancel a booked order: free its seat, void its subsidy lines, withdraw a delivery's rider task."""
    now = utcnow()
    _move(order, OrderStatus.cancelled)
    order.cancelled_at, order.cancelled_by, order.cancel_reason = now, actor, reason[:200]
    await _release_seat(uow, order.menu_id)
    await uow.session.execute(
        sa.update(LINES).where(LINES.c.order_id == order.id).values(status=LineStatus.cancelled.value)
    )
    if order.fulfilment == Fulfilment.delivery:
        uow.emit(
            DeliveryCancelled(order_id=order.id, reason=reason[:200], cancelled_at=now, **await _for_family(uow, order))
        )


def serve(order: Order, who: Principal) -> Order:
    if order.status != OrderStatus.booked:
        raise conflict(
            "order_not_checkable",
            _t("An order that is {status} cannot be checked in.", status=order.status),
            current_status=order.status,
        )
    if order.fulfilment == Fulfilment.delivery:
        raise conflict("delivery_order", "Delivery orders are handed to riders, not checked in.")
    if order.meal_date != config.today():
        raise conflict("not_today", _t("This order is for {meal_date}.", meal_date=order.meal_date))
    _move(order, OrderStatus.served)
    order.checked_in_at, order.checked_in_by = config.now(), who.sub
    return order


async def check_in(uow: UnitOfWork, who: Principal, order_id: UUID) -> Order:
    order, canteen, _, _, _ = await load_order(uow, who, order_id, for_update=True)
    if not access.manages(who, canteen):
        raise Problem(403, "forbidden_role", "Canteen staff only", "Check-in is done at the canteen counter.")
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
            raise Problem(
                422,
                "slot_required",
                "No meal is being served now",
                "Say which slot you are serving.",
                errors=[{"field": "slot", "message": "required outside serving hours", "type": "missing"}],
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


async def mark_delivered(uow: UnitOfWork, order_id: UUID, *, task_id: UUID, at: datetime) -> Order | None:
    """A rider completed the delivery task. Idempotent: a delivered order stays as it is."""
    order = await uow.session.get(Order, order_id, with_for_update=uow.db.is_postgres)
    if order is None or order.fulfilment != Fulfilment.delivery:
        return None
    if order.status != OrderStatus.booked:
        return None  # already delivered, or cancelled before the rider got there: nothing to record
    _move(order, OrderStatus.delivered)
    order.delivered_at, order.rider_task_id = at, task_id
    uow.emit(OrderDelivered(order_id=order.id, delivered_at=at, rider_task_id=task_id, **await _for_family(uow, order)))
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


async def mark_delivered_by_staff(uow: UnitOfWork, order: Order) -> None:
    at = config.now()
    _move(order, OrderStatus.delivered)
    order.delivered_at = at
    uow.emit(OrderDelivered(order_id=order.id, delivered_at=at, rider_task_id=None, **await _for_family(uow, order)))
