"""Routes under ``/canteen/canteens``: canteens and their meal slots, a canteen's menus, counter check-in and
walk-ins, the kitchen sheet, deliveries and the monthly settlement."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from minsheng.platform import csvfile
from minsheng.platform.access import ensure
from minsheng.platform.errors import Problem, invalid
from minsheng.platform.idempotency import IdempotencyKey
from minsheng.platform.inputs import Day
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.responses import plain_json
from minsheng.platform.service import UoW
from services.canteen import access, booking, canteens, config, counter, menus, reports
from services.canteen.deliveries import DeliveryStop, delivery_list
from services.canteen.kitchen import KitchenSheet, kitchen_sheet
from services.canteen.models import (
    CanteenCreate,
    CanteenPublic,
    CanteenStatus,
    CanteenUpdate,
    CheckIn,
    MealSlotPublic,
    MealSlotUpsert,
    MenuCopy,
    MenuFilters,
    MenuPublic,
    MenuUpsert,
    OrderPublic,
    PublishRange,
    Slot,
    SlugText,
    WalkInCreate,
)
from services.canteen.views.deps import (
    CanteenRef,
    MaybeCaller,
    Month,
    Staff,
    commit,
    dietary_needs_for,
    idempotent_order,
    order_out,
)

router = APIRouter()


@router.get("/canteens", tags=["canteens"], summary="Canteens (public): filter by a community they serve and by status")
async def list_canteens(
    *,
    uow: UoW,
    who: MaybeCaller,
    community: SlugText | None = None,
    status: CanteenStatus | None = None,
    page: PageQuery,
) -> Page[CanteenPublic]:
    found = await canteens.list_canteens(uow, page, community=community, status=status)
    slots = await canteens.slots_of(uow, [c.id for c in found.items])
    return found.map(lambda c: canteens.canteen_public(c, slots[c.id]))


@router.post(
    "/canteens",
    status_code=201,
    tags=["canteens"],
    summary="Open (plan) a canteen: staff of its community, or county staff",
)
async def create_canteen(body: CanteenCreate, uow: UoW, who: Staff) -> CanteenPublic:
    canteen = await canteens.create_canteen(uow, who, body)
    await commit(uow)
    return canteens.canteen_public(canteen, [])


@router.get("/canteens/{canteen_ref}", tags=["canteens"], summary="One canteen with its meal slots (public)")
async def get_canteen(canteen_ref: CanteenRef, uow: UoW, who: MaybeCaller) -> CanteenPublic:
    canteen = await canteens.get_canteen(uow, canteen_ref)
    return canteens.canteen_public(canteen, (await canteens.slots_of(uow, [canteen.id]))[canteen.id])


@router.patch("/canteens/{canteen_ref}", tags=["canteens"], summary="Change details or status (planned → open)")
async def update_canteen(canteen_ref: CanteenRef, body: CanteenUpdate, uow: UoW, who: Staff) -> CanteenPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    await canteens.update_canteen(uow, canteen, body)
    await commit(uow)
    return canteens.canteen_public(canteen, (await canteens.slots_of(uow, [canteen.id]))[canteen.id])


@router.put(
    "/canteens/{canteen_ref}/slots/{slot}",
    tags=["canteens"],
    summary="Configure a meal slot: serving hours, capacity, booking cut-off",
)
async def upsert_slot(
    canteen_ref: CanteenRef, slot: Slot, body: MealSlotUpsert, uow: UoW, who: Staff
) -> MealSlotPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    row = await canteens.upsert_slot(uow, canteen, slot, body)
    await commit(uow)
    return MealSlotPublic.model_validate({**row.model_dump(), "slot": row.slot})


@router.put(
    "/canteens/{canteen_ref}/menus/{meal_date}/{slot}",
    tags=["menus"],
    summary="Create or replace the menu (set meals) for a day and slot, as a draft",
)
async def upsert_menu(
    canteen_ref: CanteenRef, meal_date: Day, slot: Slot, body: MenuUpsert, uow: UoW, who: Staff
) -> MenuPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    menu, meals = await menus.upsert_menu(uow, canteen, meal_date, slot, body)
    await commit(uow)
    return menus.menu_public(menu, meals)


@router.post(
    "/canteens/{canteen_ref}/menus/copy",
    status_code=201,
    tags=["menus"],
    summary="Copy a week's menus to another week as drafts (existing menus are kept)",
)
async def copy_menus(canteen_ref: CanteenRef, body: MenuCopy, uow: UoW, who: Staff) -> list[MenuPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    created = await menus.copy_menus(uow, canteen, body)
    await commit(uow)
    return [menus.menu_public(m, meals) for m, meals in created]


@router.post(
    "/canteens/{canteen_ref}/menus/publish",
    tags=["menus"],
    summary="Publish every draft menu in a date range (e.g. next week's)",
)
async def publish_range(canteen_ref: CanteenRef, body: PublishRange, uow: UoW, who: Staff) -> list[MenuPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    published = await menus.publish_range(uow, canteen, body.date_from, body.date_to)
    await commit(uow)
    meals = await menus.meals_of(uow, [m.id for m in published])
    return [menus.menu_public(m, meals[m.id]) for m in published]


@router.get(
    "/canteens/{canteen_ref}/menus",
    response_model=Page[MenuPublic],
    tags=["menus"],
    summary="Published menus (public); with diner_id or needs, each set meal says if it suits",
)
async def list_menus(
    canteen_ref: CanteenRef, uow: UoW, who: MaybeCaller, filters: Annotated[MenuFilters, Query()], page: PageQuery
) -> Response:
    if filters.include_drafts or filters.diner_id is not None:  # an unknown canteen answers 404 before any other check
        canteen = await canteens.canteen_row(uow, canteen_ref)
        ensure(
            not filters.include_drafts or (who is not None and access.manages(who, canteen)),
            Problem(403, "forbidden_role", "Drafts are for canteen staff", "Leave out include_drafts."),
        )
    start = filters.date_from or config.today()
    end = filters.date_to or start + timedelta(days=6)
    if end < start or (end - start).days > 62:
        await canteens.canteen_row(uow, canteen_ref)
        raise invalid(
            "invalid_range",
            "Invalid date range",
            "date_to must be within 62 days after date_from.",
            field="date_to",
            message="out of range",
        )
    diet, dislikes = await dietary_needs_for(uow, who, filters.diner_id, filters.needs)
    found = await menus.menu_page(uow, canteen_ref, filters, page, dates=(start, end), needs=diet, dislikes=dislikes)
    # Plain data built from the rows (see ``menu_page``): serialized as is, not validated again.
    return plain_json(found)


@router.post(
    "/canteens/{canteen_ref}/check-in",
    tags=["orders"],
    summary="Staff: scan a pickup code or a diner's card at the counter",
)
async def check_in_by_code(canteen_ref: CanteenRef, body: CheckIn, uow: UoW, who: Staff) -> OrderPublic:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    order = await counter.check_in_by_code(uow, who, canteen, body.code, body.slot.value if body.slot else None)
    await commit(uow)
    return await order_out(uow, order.id, who)


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
        return 201, await booking.walk_in(uow, who, canteen, body)

    return await idempotent_order(uow, idempotency_key, f"{who.sub}:canteen-walk-in", body, action)


@router.get(
    "/canteens/{canteen_ref}/kitchen",
    tags=["kitchen"],
    summary="Meals to prepare per slot and set meal, with dietary flags",
)
async def kitchen(
    canteen_ref: CanteenRef,
    uow: UoW,
    who: Staff,
    meal_date: Day | None = None,
) -> KitchenSheet:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    return await kitchen_sheet(uow, canteen, meal_date or config.today())


@router.get("/canteens/{canteen_ref}/deliveries", tags=["kitchen"], summary="The day's delivery list (phones masked)")
async def deliveries(
    *,
    canteen_ref: CanteenRef,
    uow: UoW,
    who: Staff,
    meal_date: Day | None = None,
    slot: Slot | None = None,
    page: PageQuery,
) -> Page[DeliveryStop]:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    return await delivery_list(uow, canteen, meal_date or config.today(), slot.value if slot else None, page)


@router.get(
    "/canteens/{canteen_ref}/settlements/{month}",
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
    tags=["settlement"],
    summary="Freeze the month's figures and claim file (after the month ends)",
)
async def close_settlement(canteen_ref: CanteenRef, month: Month, uow: UoW, who: Staff) -> reports.Settlement:
    canteen = await canteens.managed_canteen(uow, who, canteen_ref)
    result = await reports.close_settlement(uow, who, canteen, month)
    await commit(uow)
    return result
