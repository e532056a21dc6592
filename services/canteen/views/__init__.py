"""HTTP API of the canteen service (mounted at ``/canteen``): one module per URL area (``/canteen/orders/...`` →
``orders.py``). Thin: parse, authorize, call the use cases, commit once."""

from fastapi import APIRouter

from services.canteen.views import canteens, care, diners, me, menus, orders, subsidy, subsidy_rules

router = APIRouter()
for area in (canteens, menus, diners, me, orders, subsidy_rules, subsidy, care):
    router.include_router(area.router)
