"""HTTP API of the canteen service (mounted at ``/canteen``). Thin: parse, authorize, call the use cases,
commit once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

import pydantic_core
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response

from minsheng.platform import csvfile
from minsheng.platform.auth import Principal, Role, current_principal, optional_principal, require
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.inputs import Day, MonthText
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from minsheng.platform.privacy import field_cipher
from minsheng.platform.service import Runtime, UoW, WriteUoW
from services.canteen import access, canteens, care, config, diners, linking, menus, orders, reports, subsidy
from services.canteen.models import (
    AbsenceAlertPublic,
    AlertStatus,
    Cancellation,
    CanteenCreate,
    CanteenPublic,
    CanteenStatus,
    CanteenUpdate,
    CapacityUpdate,
    CheckIn,
    DietaryNeed,
    DinerCreate,
    DinerLookup,
    DinerPublic,
    DinerSensitive,
    DinerStatus,
    DinerUpdate,
    FamilyCodeCreate,
    FamilyCodePublic,
    FamilyCodeRedeem,
    FamilyMemberCreate,
    FamilyMemberPublic,
    Fulfilment,
    MealSlotPublic,
    MealSlotUpsert,
    MenuCopy,
    MenuPublic,
    MenuStatus,
    MenuUpsert,
    OrderBatchCreate,
    OrderCreate,
    OrderPublic,
    OrderStatus,
    PiiAccessPublic,
    PublishRange,
    Quote,
    QuoteRequest,
    ScanResult,
    Slot,
    SubsidyRuleCreate,
    SubsidyRulePublic,
    SubsidyRuleRetire,
    SubsidyRuleVersionCreate,
    WalkInCreate,
)

router = APIRouter()
Caller = Annotated[Principal, Depends(current_principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]
Carer = Annotated[Principal, Depends(require(Role.staff, Role.grid_worker))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CanteenRef = Annotated[str, Path(description="Canteen id or code (e.g. yunxing-street)", max_length=50)]
Month = Annotated[MonthText, Path(description="YYYY-MM")]


async def _commit(uow: UoW) -> None:
    """Commit once; a unique constraint lost to a concurrent request is a 409, never a 500."""
    try:
        await uow.commit()
    except sa.exc.IntegrityError as exc:
        await uow.rollback()
        raise Problem(
            409,
            "concurrent_change",
            "Conflict with the current state",
            "Someone changed the same thing at the same time; reload and retry.",
        ) from exc


def _admin(who: Principal) -> None:
    if not who.is_admin:
        raise Problem(
            403, "forbidden_scope", "County-level only", "Subsidy rules are set by county staff (scope `*`) or admins."
        )


# --- canteens ----------------------------------------------------------------------------------------------------


@router.get(
    "/canteens",
    response_model=Page[CanteenPublic],
    tags=["canteens"],
    summary="Canteens (public): filter by a community they serve and by status",
)
async def list_canteens(
    uow: UoW,
    who: MaybeCaller,
    community: str | None = None,
    status: CanteenStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[CanteenPublic]:
    page = await canteens.list_canteens(uow, community=community, status=status, limit=limit, cursor=cursor)
    slots = await canteens.slots_of(uow, [c.id for c in page.items])
    return Page[CanteenPublic](
        items=[canteens.canteen_public(c, slots[c.id]) for c in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/canteens",
    status_code=201,
    response_model=CanteenPublic,
    tags=["canteens"],
    summary="Open (plan) a canteen: staff of its community, or county staff",
)
async def create_canteen(body: CanteenCreate, uow: UoW, who: Staff) -> CanteenPublic:
    canteen = await canteens.create_canteen(uow, who, body)
    await _commit(uow)
    return canteens.canteen_public(canteen, [])


@router.get(
    "/canteens/{canteen_ref}",
    response_model=CanteenPublic,
    tags=["canteens"],
    summary="One canteen with its meal slots (public)",
)
async def get_canteen(canteen_ref: CanteenRef, uow: UoW, who: MaybeCaller) -> CanteenPublic:
    canteen = await canteens.get_canteen(uow, canteen_ref)
    return canteens.canteen_public(canteen, (await canteens.slots_of(uow, [canteen.id]))[canteen.id])


@router.patch(
    "/canteens/{canteen_ref}",
    response_model=CanteenPublic,
    tags=["canteens"],
    summary="Change details or status (planned → open)",
)
async def update_canteen(canteen_ref: CanteenRef, body: CanteenUpdate, uow: UoW, who: Staff) -> CanteenPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    await canteens.update_canteen(uow, canteen, body)
    await _commit(uow)
    return canteens.canteen_public(canteen, (await canteens.slots_of(uow, [canteen.id]))[canteen.id])


@router.put(
    "/canteens/{canteen_ref}/slots/{slot}",
    response_model=MealSlotPublic,
    tags=["canteens"],
    summary="Configure a meal slot: serving hours, capacity, booking cut-off",
)
async def upsert_slot(
    canteen_ref: CanteenRef, slot: Slot, body: MealSlotUpsert, uow: UoW, who: Staff
) -> MealSlotPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    row = await canteens.upsert_slot(uow, canteen, slot, body)
    await _commit(uow)
    return MealSlotPublic.model_validate({**row.model_dump(), "slot": row.slot})


# --- menus ---------------------------------------------------------------------------------------------------------


async def _needs_for(
    uow: UoW, who: Principal | None, diner_id: UUID | None, needs: list[DietaryNeed] | None
) -> tuple[list[str] | None, list[str]]:
    if diner_id is not None:
        if who is None:
            raise Problem(401, "unauthenticated", "Authentication required", "Sign in to see what suits a diner.")
        diner, *_ = await diners.load_diner(uow, who, diner_id)
        return [str(n) for n in diner.dietary], list(diner.dislikes)
    if needs is not None:
        return [str(n) for n in needs], []
    return None, []


@router.put(
    "/canteens/{canteen_ref}/menus/{meal_date}/{slot}",
    response_model=MenuPublic,
    tags=["menus"],
    summary="Create or replace the menu (set meals) for a day and slot, as a draft",
)
async def upsert_menu(
    canteen_ref: CanteenRef, meal_date: Day, slot: Slot, body: MenuUpsert, uow: UoW, who: Staff
) -> MenuPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    menu, meals = await menus.upsert_menu(uow, canteen, meal_date, slot, body)
    await _commit(uow)
    return menus.menu_public(menu, meals)


@router.post(
    "/canteens/{canteen_ref}/menus/copy",
    status_code=201,
    response_model=list[MenuPublic],
    tags=["menus"],
    summary="Copy a week's menus to another week as drafts (existing menus are kept)",
)
async def copy_menus(canteen_ref: CanteenRef, body: MenuCopy, uow: UoW, who: Staff) -> list[MenuPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    created = await menus.copy_menus(uow, canteen, body)
    await _commit(uow)
    return [menus.menu_public(m, meals) for m, meals in created]


@router.post(
    "/canteens/{canteen_ref}/menus/publish",
    response_model=list[MenuPublic],
    tags=["menus"],
    summary="Publish every draft menu in a date range (e.g. next week's)",
)
async def publish_range(canteen_ref: CanteenRef, body: PublishRange, uow: UoW, who: Staff) -> list[MenuPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    published = await menus.publish_range(uow, canteen, body.date_from, body.date_to)
    await _commit(uow)
    meals = await menus.meals_of(uow, [m.id for m in published])
    return [menus.menu_public(m, meals[m.id]) for m in published]


@router.get(
    "/canteens/{canteen_ref}/menus",
    response_model=Page[MenuPublic],
    tags=["menus"],
    summary="Published menus (public); with diner_id or needs, each set meal says if it suits",
)
async def list_menus(
    canteen_ref: CanteenRef,
    uow: UoW,
    who: MaybeCaller,
    date_from: Day | None = None,
    date_to: Day | None = None,
    slot: Slot | None = None,
    diner_id: UUID | None = None,
    needs: Annotated[list[DietaryNeed] | None, Query()] = None,
    only_suitable: bool = False,
    include_drafts: bool = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Response:
    if include_drafts or diner_id is not None:  # an unknown canteen answers 404 before any other check
        canteen = await canteens.canteen_row(uow, canteen_ref)
        if include_drafts and (who is None or not access.manages(who, canteen)):
            raise Problem(403, "forbidden_role", "Drafts are for canteen staff", "Leave out include_drafts.")
    start = date_from or config.today()
    end = date_to or start + timedelta(days=6)
    if end < start or (end - start).days > 62:
        await canteens.canteen_row(uow, canteen_ref)
        raise Problem(
            422,
            "invalid_range",
            "Invalid date range",
            "date_to must be within 62 days after date_from.",
            errors=[{"field": "date_to", "message": "out of range", "type": "value_error"}],
        )
    diet, dislikes = await _needs_for(uow, who, diner_id, needs)
    page = await menus.menu_page(
        uow,
        canteen_ref,
        date_from=start,
        date_to=end,
        slot=slot,
        drafts=include_drafts,
        limit=limit,
        cursor=cursor,
        needs=diet,
        dislikes=dislikes,
        only_suitable=only_suitable and diet is not None,
    )
    # Plain data built from the rows (see ``menu_page``): serialized as is, not validated again.
    return Response(pydantic_core.to_json(page), media_type="application/json")


@router.get(
    "/menus/{menu_id}",
    response_model=MenuPublic,
    tags=["menus"],
    summary="One menu (public once published); with diner_id or needs, what suits",
)
async def get_menu(
    menu_id: UUID,
    uow: UoW,
    who: MaybeCaller,
    diner_id: UUID | None = None,
    needs: Annotated[list[DietaryNeed] | None, Query()] = None,
) -> MenuPublic:
    menu = await menus.get_menu(uow, menu_id)
    if menu.status != MenuStatus.published:
        canteen = await canteens.get_canteen(uow, menu.canteen_id)
        if who is None or not access.manages(who, canteen):
            raise Problem(404, "menu_not_found", "Menu not found", _t("No menu {menu_id}.", menu_id=menu_id))
    diet, dislikes = await _needs_for(uow, who, diner_id, needs)
    meals = await menus.meals_of(uow, [menu.id])
    return menus.menu_public(menu, meals[menu.id], needs=diet, dislikes=dislikes)


@router.post(
    "/menus/{menu_id}/publish", response_model=MenuPublic, tags=["menus"], summary="Publish one menu: bookings open"
)
async def publish_menu(menu_id: UUID, uow: UoW, who: Staff) -> MenuPublic:
    menu = await menus.get_menu(uow, menu_id, for_update=True)
    canteen = await canteens.managed_canteen(uow, who, menu.canteen_id)
    menus.publish(canteen, menu)
    await _commit(uow)
    return menus.menu_public(menu, (await menus.meals_of(uow, [menu.id]))[menu.id])


@router.put(
    "/menus/{menu_id}/capacity",
    response_model=MenuPublic,
    tags=["menus"],
    summary="Raise or lower how many meals are prepared (never below those booked)",
)
async def set_capacity(menu_id: UUID, body: CapacityUpdate, uow: UoW, who: Staff) -> MenuPublic:
    menu = await menus.get_menu(uow, menu_id, for_update=True)
    await canteens.managed_canteen(uow, who, menu.canteen_id)
    await menus.set_capacity(uow, menu, body.capacity)
    await _commit(uow)
    return menus.menu_public(menu, (await menus.meals_of(uow, [menu.id]))[menu.id])


# --- diners ---------------------------------------------------------------------------------------------------------


@router.post(
    "/diners",
    status_code=201,
    response_model=DinerPublic,
    tags=["diners"],
    summary="Register an elder (staff of the canteen or community, or the area's grid worker)",
)
async def register_diner(body: DinerCreate, uow: UoW, who: Carer, rt: Runtime) -> DinerPublic:
    diner = await diners.register_diner(uow, who, body, field_cipher(rt.settings))
    await _commit(uow)
    return diners.diner_public(diner)


@router.get(
    "/diners",
    response_model=Page[DinerPublic],
    tags=["diners"],
    summary="Diners in your scope (staff: your canteen/community; grid workers: your area)",
)
async def list_diners(
    uow: UoW,
    who: Carer,
    canteen_id: UUID | None = None,
    community: str | None = None,
    status: DinerStatus | None = None,
    name: str | None = Query(default=None, max_length=50),
    delivery: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[DinerPublic]:
    page = await diners.list_diners(
        uow,
        who,
        canteen_id=canteen_id,
        community=community,
        status=status,
        name=name,
        delivery=delivery,
        limit=limit,
        cursor=cursor,
    )
    family = await diners.family_of(uow, [d.id for d in page.items])
    return Page[DinerPublic](
        items=[diners.diner_public(d, family[d.id]) for d in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/me/diners", response_model=list[DinerPublic], tags=["diners"], summary="The diners you are, or are family of"
)
async def my_diners(uow: UoW, who: Caller) -> list[DinerPublic]:
    mine = await diners.my_diners(uow, who)
    family = await diners.family_of(uow, [d.id for d in mine])
    return [diners.diner_public(d, family[d.id]) for d in mine]


@router.post(
    "/diners/lookup",
    response_model=DinerPublic,
    tags=["diners"],
    summary="Find a diner by ID number (matched by its keyed hash; the number is never stored in clear)",
)
async def lookup_diner(body: DinerLookup, uow: UoW, who: Carer, rt: Runtime) -> DinerPublic:
    diner = await diners.lookup_diner(uow, who, body.id_number, field_cipher(rt.settings))
    return diners.diner_public(diner, (await diners.family_of(uow, [diner.id]))[diner.id])


@router.get(
    "/diners/{diner_id}/statement/{month}",
    response_model=reports.DinerStatement,
    tags=["diners"],
    summary="The elder's month: meals, price, subsidy by funder, what they (or family) paid",
)
async def diner_statement(diner_id: UUID, month: Month, uow: UoW, who: Caller) -> reports.DinerStatement:
    diner, *_ = await diners.load_diner(uow, who, diner_id)
    return await reports.diner_statement(uow, diner, month)


@router.get(
    "/diners/{diner_id}",
    response_model=DinerPublic,
    tags=["diners"],
    summary="One diner (the elder, family, or staff in scope); personal data masked",
)
async def get_diner(diner_id: UUID, uow: UoW, who: Caller) -> DinerPublic:
    diner, _, family, _, _ = await diners.load_diner(uow, who, diner_id)
    return diners.diner_public(diner, family)


@router.patch(
    "/diners/{diner_id}",
    response_model=DinerPublic,
    tags=["diners"],
    summary="Update a diner (the elder and family may change tastes, address, away dates)",
)
async def update_diner(diner_id: UUID, body: DinerUpdate, uow: UoW, who: Caller, rt: Runtime) -> DinerPublic:
    diner, family = await diners.update_diner(uow, who, diner_id, body, field_cipher(rt.settings))
    await _commit(uow)
    return diners.diner_public(diner, family)


@router.get(
    "/diners/{diner_id}/sensitive",
    response_model=DinerSensitive,
    tags=["diners"],
    summary="Unmasked phone, ID number and health notes (staff with `pii:reveal`; every read is logged)",
)
async def read_sensitive(
    diner_id: UUID, uow: WriteUoW, who: Carer, rt: Runtime, purpose: str = Query(min_length=2, max_length=200)
) -> DinerSensitive:
    result = await diners.read_sensitive(uow, who, diner_id, purpose, field_cipher(rt.settings))
    await _commit(uow)
    return result


@router.get(
    "/diners/{diner_id}/access-log",
    response_model=Page[PiiAccessPublic],
    tags=["diners"],
    summary="Who read this diner's unmasked data, when and why",
)
async def access_log(
    diner_id: UUID, uow: UoW, who: Carer, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[PiiAccessPublic]:
    page = await diners.access_log(uow, who, diner_id, limit=limit, cursor=cursor)
    return Page[PiiAccessPublic](
        items=[PiiAccessPublic.model_validate(a, from_attributes=True) for a in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/diners/{diner_id}/family",
    status_code=201,
    response_model=FamilyMemberPublic,
    tags=["diners"],
    summary="Link a family member who may order and pay for the elder",
)
async def add_family(
    diner_id: UUID, body: FamilyMemberCreate, uow: UoW, who: Caller, rt: Runtime
) -> FamilyMemberPublic:
    member = await diners.add_family(uow, who, diner_id, body, field_cipher(rt.settings))
    await _commit(uow)
    return FamilyMemberPublic.model_validate(member, from_attributes=True)


@router.delete(
    "/diners/{diner_id}/family/{member_id}",
    status_code=204,
    tags=["diners"],
    summary="Unlink a family member (the elder, staff, or the member themself)",
)
async def remove_family(diner_id: UUID, member_id: UUID, uow: UoW, who: Caller) -> Response:
    await diners.remove_family(uow, who, diner_id, member_id)
    await _commit(uow)
    return Response(status_code=204)


@router.post(
    "/diners/{diner_id}/family-codes",
    status_code=201,
    response_model=FamilyCodePublic,
    tags=["diners"],
    summary="A one-time code for a relative to link their app account to this diner (staff, grid worker)",
)
async def issue_family_code(
    diner_id: UUID, body: FamilyCodeCreate, uow: UoW, who: Carer, rt: Runtime
) -> FamilyCodePublic:
    code, row = await linking.issue(uow, who, diner_id, body, field_cipher(rt.settings))
    await _commit(uow)
    return FamilyCodePublic(diner_id=row.diner_id, code=code, expires_at=row.expires_at)


@router.post(
    "/me/family-links",
    response_model=DinerPublic,
    tags=["diners"],
    dependencies=[Depends(require(Role.resident))],
    summary="Link your app account to a diner as family, with the code canteen staff or the grid worker gave you",
)
async def redeem_family_code(body: FamilyCodeRedeem, uow: UoW, who: Caller, rt: Runtime) -> DinerPublic:
    diner = await linking.redeem(uow, who, body.code, field_cipher(rt.settings))
    await _commit(uow)
    return diners.diner_public(diner, (await diners.family_of(uow, [diner.id]))[diner.id])


# --- orders ----------------------------------------------------------------------------------------------------------


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderPublic,
    tags=["orders"],
    summary="Book a meal (the elder, family or staff); delivery orders call a rider",
)
async def book(body: OrderCreate, uow: UoW, who: Caller, idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    async def action() -> tuple[int, OrderPublic]:
        return 201, await orders.book(uow, who, body)

    return await _idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-order", body, action)


@router.post(
    "/orders/batch",
    status_code=201,
    response_model=list[OrderPublic],
    tags=["orders"],
    summary="Book several meals for one diner at once (a week ahead): all of them, or none",
)
async def book_many(
    body: OrderBatchCreate, uow: UoW, who: Caller, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    async def action() -> tuple[int, list[OrderPublic]]:
        return 201, await orders.book_many(uow, who, body)

    return await _idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-order-batch", body, action)


async def _idempotent_order(
    uow: UoW, key: str | None, scope: str, body: object, action: Callable[[], Awaitable[tuple[int, Any]]]
) -> JSONResponse:
    try:
        return await idempotent(uow, key=key, scope=scope, body=body, action=action)
    except Problem as exc:
        if key is None or exc.code != "already_booked":
            raise
        # A double tap: the twin with the same key held the diner's lock and booked first. Its stored response
        # is the answer (a different body under that key is still a 422).
        await uow.rollback()
        return await idempotent(uow, key=key, scope=scope, body=body, action=action)


@router.get(
    "/orders",
    response_model=Page[OrderPublic],
    tags=["orders"],
    summary="Your diners' orders; staff: a canteen's (canteen_id) or a diner's (diner_id)",
)
async def list_orders(
    uow: UoW,
    who: Caller,
    diner_id: UUID | None = None,
    canteen_id: UUID | None = None,
    meal_date: Day | None = None,
    status: OrderStatus | None = None,
    fulfilment: Fulfilment | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[OrderPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_id) if canteen_id is not None else None
    page = await orders.list_orders(
        uow,
        who,
        diner_id=diner_id,
        canteen=canteen,
        meal_date=meal_date,
        status=status,
        fulfilment=fulfilment,
        limit=limit,
        cursor=cursor,
    )
    lines = await orders.lines_of(uow, [o.id for o in page.items])
    return Page[OrderPublic](
        items=[orders.order_public(o, lines[o.id]) for o in page.items], next_cursor=page.next_cursor
    )


async def _order_out(uow: UoW, order_id: UUID, who: Principal) -> OrderPublic:
    order, *_ = await orders.load_order(uow, who, order_id)
    return orders.order_public(order, (await orders.lines_of(uow, [order.id]))[order.id])


@router.get(
    "/orders/{order_id}",
    response_model=OrderPublic,
    tags=["orders"],
    summary="One order with its subsidy lines and who funds what",
)
async def get_order(order_id: UUID, uow: UoW, who: Caller) -> OrderPublic:
    return await _order_out(uow, order_id, who)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderPublic,
    tags=["orders"],
    summary="Cancel before the cut-off (staff: until served); frees the seat, withdraws a delivery",
)
async def cancel(order_id: UUID, uow: UoW, who: Caller, body: Cancellation | None = None) -> OrderPublic:
    await orders.cancel(uow, who, order_id, (body or Cancellation()).reason)
    await _commit(uow)
    return await _order_out(uow, order_id, who)


@router.post(
    "/orders/{order_id}/check-in",
    response_model=OrderPublic,
    tags=["orders"],
    summary="Staff: the diner collected or sat down for this meal",
)
async def check_in(order_id: UUID, uow: UoW, who: Staff) -> OrderPublic:
    await orders.check_in(uow, who, order_id)
    await _commit(uow)
    return await _order_out(uow, order_id, who)


@router.post(
    "/orders/{order_id}/delivered",
    response_model=OrderPublic,
    tags=["orders"],
    summary="Staff: confirm a delivery by hand (when the rider's task did not report it)",
)
async def confirm_delivered(order_id: UUID, uow: UoW, who: Staff) -> OrderPublic:
    order, canteen, *_ = await orders.load_order(uow, who, order_id, for_update=True)
    if not access.manages(who, canteen):
        raise Problem(403, "forbidden_role", "Canteen staff only", "Only the canteen confirms deliveries.")
    if order.fulfilment != Fulfilment.delivery or order.status != OrderStatus.booked:
        raise Problem(
            409,
            "order_not_deliverable",
            "Conflict with the current state",
            _t(
                "A {fulfilment} order that is {status} cannot be confirmed delivered.",
                fulfilment=order.fulfilment,
                status=order.status,
            ),
        )
    await orders.mark_delivered_by_staff(uow, order)
    await _commit(uow)
    return await _order_out(uow, order_id, who)


@router.post(
    "/canteens/{canteen_ref}/check-in",
    response_model=OrderPublic,
    tags=["orders"],
    summary="Staff: scan a pickup code or a diner's card at the counter",
)
async def check_in_by_code(canteen_ref: CanteenRef, body: CheckIn, uow: UoW, who: Staff) -> OrderPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    order = await orders.check_in_by_code(uow, who, canteen, body.code, body.slot.value if body.slot else None)
    await _commit(uow)
    return await _order_out(uow, order.id, who)


@router.post(
    "/canteens/{canteen_ref}/walk-ins",
    status_code=201,
    response_model=OrderPublic,
    tags=["orders"],
    summary="Staff: a diner who did not book eats today (served at once, subsidy computed)",
)
async def walk_in(
    canteen_ref: CanteenRef, body: WalkInCreate, uow: UoW, who: Staff, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)

    async def action() -> tuple[int, OrderPublic]:
        return 201, await orders.walk_in(uow, who, canteen, body)

    return await _idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-walk-in", body, action)


# --- subsidy --------------------------------------------------------------------------------------------------------


def _rule_out(rule: object) -> SubsidyRulePublic:
    return SubsidyRulePublic.model_validate(rule, from_attributes=True)


@router.get(
    "/subsidy-rules",
    response_model=Page[SubsidyRulePublic],
    tags=["subsidy"],
    summary="Rule versions; `on` = those in force on a date",
)
async def list_rules(
    uow: UoW,
    who: Caller,
    on: Day | None = None,
    key: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[SubsidyRulePublic]:
    page = await subsidy.list_rules(uow, on=on, key=key, limit=limit, cursor=cursor)
    return Page[SubsidyRulePublic](items=[_rule_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.post(
    "/subsidy-rules",
    status_code=201,
    response_model=SubsidyRulePublic,
    tags=["subsidy"],
    summary="A new rule (version 1) from a date: county staff only",
)
async def create_rule(body: SubsidyRuleCreate, uow: UoW, who: Staff) -> SubsidyRulePublic:
    _admin(who)
    rule = await subsidy.create_rule(uow, who.sub, body)
    await _commit(uow)
    return _rule_out(rule)


@router.get(
    "/subsidy-rules/{key}",
    response_model=list[SubsidyRulePublic],
    tags=["subsidy"],
    summary="Every version of a rule, oldest first",
)
async def rule_history(key: str, uow: UoW, who: Caller) -> list[SubsidyRulePublic]:
    versions = await subsidy.versions_of(uow, key)
    if not versions:
        raise Problem(404, "subsidy_rule_not_found", "Subsidy rule not found", _t("No rule {key}.", key=key))
    return [_rule_out(r) for r in versions]


@router.post(
    "/subsidy-rules/{key}/versions",
    status_code=201,
    response_model=SubsidyRulePublic,
    tags=["subsidy"],
    summary="Change a rule from a date: a new version; past orders keep what they were computed with",
)
async def add_version(key: str, body: SubsidyRuleVersionCreate, uow: UoW, who: Staff) -> SubsidyRulePublic:
    _admin(who)
    rule = await subsidy.add_version(uow, who.sub, key, body)
    await _commit(uow)
    return _rule_out(rule)


@router.post(
    "/subsidy-rules/{key}/retire",
    response_model=SubsidyRulePublic,
    tags=["subsidy"],
    summary="End a rule after a date (its latest version stops applying)",
)
async def retire_rule(key: str, body: SubsidyRuleRetire, uow: UoW, who: Staff) -> SubsidyRulePublic:
    _admin(who)
    rule = await subsidy.retire(uow, key, body.effective_to)
    await _commit(uow)
    return _rule_out(rule)


@router.post(
    "/subsidy/quote",
    response_model=Quote,
    tags=["subsidy"],
    summary="What a meal would cost this diner: price, subsidy by funder, the elder's share",
)
async def quote(body: QuoteRequest, uow: UoW, who: Caller) -> Quote:
    diner, *_ = await diners.load_diner(uow, who, body.diner_id)
    menu = await menus.get_menu(uow, body.menu_id)
    meal = next((m for m in (await menus.meals_of(uow, [menu.id]))[menu.id] if m.id == body.set_meal_id), None)
    if meal is None:
        raise Problem(
            404,
            "set_meal_not_found",
            "Set meal not found",
            _t("No set meal {set_meal_id} on this menu.", set_meal_id=body.set_meal_id),
        )
    return (await orders.quote(uow, diner, menu, meal, body.fulfilment)).quote()


# --- kitchen and settlement --------------------------------------------------------------------------------------


@router.get(
    "/canteens/{canteen_ref}/kitchen",
    response_model=reports.KitchenSheet,
    tags=["kitchen"],
    summary="Meals to prepare per slot and set meal, with dietary flags",
)
async def kitchen(
    canteen_ref: CanteenRef,
    uow: UoW,
    who: Staff,
    meal_date: Day | None = None,
) -> reports.KitchenSheet:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    return await reports.kitchen_sheet(uow, canteen, meal_date or config.today())


@router.get(
    "/canteens/{canteen_ref}/deliveries",
    response_model=Page[reports.DeliveryStop],
    tags=["kitchen"],
    summary="The day's delivery list (phones masked)",
)
async def deliveries(
    canteen_ref: CanteenRef,
    uow: UoW,
    who: Staff,
    meal_date: Day | None = None,
    slot: Slot | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[reports.DeliveryStop]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    return await reports.delivery_list(
        uow, canteen, meal_date or config.today(), slot.value if slot else None, limit=limit, cursor=cursor
    )


@router.get(
    "/canteens/{canteen_ref}/settlements/{month}",
    response_model=reports.Settlement,
    tags=["settlement"],
    summary="Monthly settlement: meals served, subsidy by category and funder, reconciliation",
)
async def settlement(canteen_ref: CanteenRef, month: Month, uow: UoW, who: Staff) -> reports.Settlement:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    return await reports.settlement(uow, canteen, month)


@router.get(
    "/canteens/{canteen_ref}/settlements/{month}/claim.csv",
    tags=["settlement"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    summary="The subsidy claim file for the government (frozen once the month is closed)",
)
async def claim_file(canteen_ref: CanteenRef, month: Month, uow: UoW, who: Staff) -> Response:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    closed = await reports.closed_settlement(uow, canteen, month)
    content = closed.claim_csv if closed is not None else await reports.claim_csv(uow, canteen, month)
    # Exactly the bytes whose hash a closed settlement publishes (files closed before the BOM was part of the
    # stored text are served without it, as they were hashed).
    return Response(
        csvfile.encode(content),
        media_type=csvfile.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{canteen.code}-{month}-claim.csv"'},
    )


@router.post(
    "/canteens/{canteen_ref}/settlements/{month}/close",
    response_model=reports.Settlement,
    tags=["settlement"],
    summary="Freeze the month's figures and claim file (after the month ends)",
)
async def close_settlement(canteen_ref: CanteenRef, month: Month, uow: UoW, who: Staff) -> reports.Settlement:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    result = await reports.close_settlement(uow, who, canteen, month)
    await _commit(uow)
    return result


# --- care signals ---------------------------------------------------------------------------------------------------


@router.get(
    "/care/alerts",
    response_model=Page[AbsenceAlertPublic],
    tags=["care"],
    summary="Absence alerts for the canteens you manage",
)
async def list_alerts(
    uow: UoW,
    who: Staff,
    canteen_id: UUID | None = None,
    status: AlertStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[AbsenceAlertPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_id) if canteen_id is not None else None
    page = await care.list_alerts(uow, who, canteen=canteen, status=status, limit=limit, cursor=cursor)
    return Page[AbsenceAlertPublic](
        items=[AbsenceAlertPublic.model_validate(a, from_attributes=True) for a in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/care/scan",
    response_model=ScanResult,
    tags=["care"],
    summary="Run the absence scan now (it also runs periodically)",
)
async def scan(uow: UoW, who: Staff, rt: Runtime) -> ScanResult:
    _admin(who)
    result = await care.scan_absences(uow, field_cipher(rt.settings))
    await _commit(uow)
    return result
