"""What the canteen routes share: who may call, path parameters, committing once, the dietary
needs a menu is matched against, and an order's answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Path
from fastapi.responses import JSONResponse

from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal, Role, current_principal, optional_principal, require
from minsheng.platform.errors import Problem
from minsheng.platform.idempotency import idempotent
from minsheng.platform.inputs import MonthText, text
from minsheng.platform.routes import commit_or_conflict
from minsheng.platform.service import UoW
from services.canteen import diners, orders
from services.canteen.models import DietaryNeed, OrderPublic, metadata

Caller = Annotated[Principal, Depends(current_principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]
Carer = Annotated[Principal, Depends(require(Role.staff, Role.grid_worker))]
CanteenRef = Annotated[str, text(50), Path(description="Canteen id or code (e.g. yunxing-street)")]
Month = Annotated[MonthText, Path(description="YYYY-MM")]


async def commit(uow: UoW) -> None:
    """Commit once; a unique constraint lost to a concurrent request is a 409, never a 500."""
    await commit_or_conflict(uow, "Someone changed the same thing at the same time; reload and retry.", metadata)


def county_only(who: Principal) -> None:
    ensure(
        who.is_admin,
        Problem(
            403, "forbidden_scope", "County-level only", "Subsidy rules are set by county staff (scope `*`) or admins."
        ),
    )


async def dietary_needs_for(
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


async def idempotent_order(
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


async def order_out(uow: UoW, order_id: UUID, who: Principal) -> OrderPublic:
    order, *_ = await orders.load_order(uow, who, order_id)
    return orders.order_public(order, (await orders.lines_of(uow, [order.id]))[order.id])
