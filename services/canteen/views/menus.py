"""Routes under ``/canteen/menus``: one menu, publishing it, its capacity."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.service import UoW
from services.canteen import canteens, menus
from services.canteen.models import CapacityUpdate, DietaryNeed, MenuPublic
from services.canteen.views.deps import MaybeCaller, Staff, commit, dietary_needs_for

router = APIRouter(tags=["menus"])


@router.get("/menus/{menu_id}", summary="One menu (public once published); with diner_id or needs, what suits")
async def get_menu(
    menu_id: UUID,
    uow: UoW,
    who: MaybeCaller,
    diner_id: UUID | None = None,
    needs: Annotated[list[DietaryNeed] | None, Query()] = None,
) -> MenuPublic:
    menu = await menus.visible_menu(uow, who, menu_id)
    diet, dislikes = await dietary_needs_for(uow, who, diner_id, needs)
    meals = await menus.meals_of(uow, [menu.id])
    return menus.menu_public(menu, meals[menu.id], needs=diet, dislikes=dislikes)


@router.post("/menus/{menu_id}/publish", summary="Publish one menu: bookings open")
async def publish_menu(menu_id: UUID, uow: UoW, who: Staff) -> MenuPublic:
    menu = await menus.get_menu(uow, menu_id, for_update=True)
    canteen = await canteens.managed_canteen(uow, who, menu.canteen_id)
    menus.publish(canteen, menu)
    await commit(uow)
    return menus.menu_public(menu, (await menus.meals_of(uow, [menu.id]))[menu.id])


@router.put(
    "/menus/{menu_id}/capacity", summary="Raise or lower how many meals are prepared (never below those booked)"
)
async def set_capacity(menu_id: UUID, body: CapacityUpdate, uow: UoW, who: Staff) -> MenuPublic:
    menu = await menus.get_menu(uow, menu_id, for_update=True)
    await canteens.managed_canteen(uow, who, menu.canteen_id)
    await menus.set_capacity(uow, menu, body.capacity)
    await commit(uow)
    return menus.menu_public(menu, (await menus.meals_of(uow, [menu.id]))[menu.id])
