"""Orders: reading them, and the meal-time rules (booking's cut-off, serving window, deliver-by). Booking, check-in,
cancellation and delivery have modules of their own. Use cases take a unit of work and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure_visible
from minsheng.platform.auth import Principal
from minsheng.platform.errors import not_found
from minsheng.platform.filters import where_given
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.access import Relation
from services.canteen.canteens import managed_canteen
from services.canteen.diners import family_of, load_diner
from services.canteen.models import (
    Canteen,
    Diner,
    FamilyMember,
    FundingShare,
    LineStatus,
    MealSlotRow,
    Menu,
    Order,
    OrderFilters,
    OrderPublic,
    OrderStatus,
    SubsidyLine,
    SubsidyLinePublic,
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
    return order_row_public(
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


def order_row_public(order: dict[str, Any], lines: Sequence[SubsidyLinePublic]) -> OrderPublic:
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
    ensure_visible(rel is not None, "order", order_id)
    return order, canteen, diner, family, rel


async def list_orders(
    uow: UnitOfWork,
    who: Principal,
    filters: OrderFilters,
    page: PageRequest,
) -> Page[Order]:
    query = select(Order)
    if filters.canteen_id is not None:
        canteen = await managed_canteen(uow, who, filters.canteen_id)
        query = query.where(Order.canteen_id == canteen.id)
    if filters.diner_id is not None:
        await load_diner(uow, who, filters.diner_id, with_family=False)  # 404 unless the caller may see this diner
        query = query.where(Order.diner_id == filters.diner_id)
    if filters.diner_id is None and filters.canteen_id is None:
        family_ids = select(FamilyMember.diner_id).where(FamilyMember.subject == who.sub)
        own = select(Diner.id).where(sa.or_(col(Diner.subject) == who.sub, col(Diner.id).in_(family_ids)))
        query = query.where(col(Order.diner_id).in_(own))
    query = where_given(
        query,
        (Order.meal_date, filters.meal_date),
        (Order.status, filters.status),
        (Order.fulfilment, filters.fulfilment),
    )
    return await keyset_page(uow.session, query, Keyset((Order.created_at, Order.id)), page)


def move_to(order: Order, status: OrderStatus) -> None:
    order.status = status.value
    order.updated_at = utcnow()
