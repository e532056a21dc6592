"""Routes under ``/canteen/subsidy``: what a meal would cost a diner."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t
from minsheng.platform.service import UoW
from services.canteen import diners, menus, subsidy
from services.canteen.models import Quote, QuoteRequest
from services.canteen.views.deps import Caller

router = APIRouter()


@router.post(
    "/subsidy/quote",
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
    return (await subsidy.quote(uow, diner, menu, meal, body.fulfilment)).quote()
