"""What the accountants and the elders read: the monthly settlement, the government claim file and the elder's
monthly statement (the kitchen's daily sheets are in ``kitchen``). Aggregated in SQL; money stays in integer fen."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import select

from minsheng.platform import csvfile
from minsheng.platform.auth import Principal
from minsheng.platform.errors import conflict, invalid
from minsheng.platform.i18n import _t
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.canteens import SLOT_RANK
from services.canteen.models import (
    SERVED_STATUSES,
    Canteen,
    Diner,
    LineStatus,
    Order,
    OrderStatus,
    SettlementRow,
    SubsidyLine,
)

ORDERS = table_of(Order)
LINES = table_of(SubsidyLine)
DINERS = table_of(Diner)


# --- monthly settlement --------------------------------------------------------------------------------------------


class CategoryClaim(BaseModel):
    category: str
    funder: str
    meals: int
    amount_fen: int


class Reconciliation(BaseModel):
    price_total_fen: int
    elder_paid_fen: int
    subsidy_total_fen: int
    claimed_fen: int
    withheld_fen: int
    price_equals_elder_plus_subsidy: bool
    subsidy_equals_claimed_plus_withheld: bool
    unsettled_bookings: int


class Settlement(BaseModel):
    canteen_id: UUID
    canteen_name: str
    operator: str
    month: str
    status: str  # open (live figures) or closed (frozen)
    meals_served: int
    diners_served: int
    orders_by_status: dict[str, int]
    meals_by_slot: dict[str, int]
    meals_by_fulfilment: dict[str, int]
    claims: list[CategoryClaim]
    claims_by_funder: dict[str, int]
    withheld_by_category: list[CategoryClaim]
    reconciliation: Reconciliation
    closed_at: datetime | None = None
    closed_by: str | None = None
    csv_sha256: str | None = None


def _month(month: str) -> tuple[date, date]:
    try:
        first, nxt = config.month_bounds(month)
    except (ValueError, TypeError) as exc:
        raise invalid(
            "invalid_month", "Invalid month", "Use YYYY-MM, e.g. 2026-11.", field="month", message="expected YYYY-MM"
        ) from exc
    return first, nxt


async def _count_by(uow: UnitOfWork, column: Any, *where: Any) -> dict[str, int]:
    """How many orders there are per value of ``column`` among those ``where`` picks."""
    rows = await uow.session.execute(sa.select(column, sa.func.count()).where(*where).group_by(column))
    return {key: int(n) for key, n in rows}


async def compute_settlement(uow: UnitOfWork, canteen: Canteen, month: str) -> Settlement:
    first, nxt = _month(month)
    in_month = sa.and_(ORDERS.c.canteen_id == canteen.id, ORDERS.c.meal_date >= first, ORDERS.c.meal_date < nxt)
    served = ORDERS.c.status.in_(SERVED_STATUSES)
    status_counts = await _count_by(uow, ORDERS.c.status, in_month)
    by_slot = await _count_by(uow, ORDERS.c.slot, in_month, served)
    by_fulfilment = await _count_by(uow, ORDERS.c.fulfilment, in_month, served)
    totals = (
        await uow.session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(sa.distinct(ORDERS.c.diner_id)),
                sa.func.coalesce(sa.func.sum(ORDERS.c.price_fen), 0),
                sa.func.coalesce(sa.func.sum(ORDERS.c.elder_pays_fen), 0),
                sa.func.coalesce(sa.func.sum(ORDERS.c.subsidy_fen), 0),
            ).where(in_month, served)
        )
    ).one()
    lines = (
        await uow.session.execute(
            sa.select(
                LINES.c.category, LINES.c.funder, LINES.c.status, sa.func.count(), sa.func.sum(LINES.c.amount_fen)
            )
            .join(ORDERS, ORDERS.c.id == LINES.c.order_id)
            .where(in_month, served, LINES.c.status.in_([LineStatus.claimed.value, LineStatus.withheld.value]))
            .group_by(LINES.c.category, LINES.c.funder, LINES.c.status)
            .order_by(LINES.c.category, LINES.c.funder)
        )
    ).all()
    claims = [
        CategoryClaim(category=c, funder=f, meals=int(n), amount_fen=int(a))
        for c, f, st, n, a in lines
        if st == LineStatus.claimed
    ]
    withheld = [
        CategoryClaim(category=c, funder=f, meals=int(n), amount_fen=int(a))
        for c, f, st, n, a in lines
        if st == LineStatus.withheld
    ]
    by_funder: dict[str, int] = defaultdict(int)
    for claim in claims:
        by_funder[claim.funder] += claim.amount_fen
    price, elder, subsidy = int(totals[2]), int(totals[3]), int(totals[4])
    claimed, held = sum(c.amount_fen for c in claims), sum(c.amount_fen for c in withheld)
    return Settlement(
        canteen_id=canteen.id,
        canteen_name=canteen.name,
        operator=canteen.operator,
        month=month,
        status="open",
        meals_served=int(totals[0]),
        diners_served=int(totals[1]),
        orders_by_status=status_counts,
        meals_by_slot=by_slot,
        meals_by_fulfilment=by_fulfilment,
        claims=claims,
        claims_by_funder=dict(by_funder),
        withheld_by_category=withheld,
        reconciliation=Reconciliation(
            price_total_fen=price,
            elder_paid_fen=elder,
            subsidy_total_fen=subsidy,
            claimed_fen=claimed,
            withheld_fen=held,
            price_equals_elder_plus_subsidy=price == elder + subsidy,
            subsidy_equals_claimed_plus_withheld=subsidy == claimed + held,
            unsettled_bookings=status_counts.get(OrderStatus.booked.value, 0),
        ),
    )


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


CSV_HEADER = [
    "canteen",
    "month",
    "meal_date",
    "slot",
    "order_id",
    "diner_id",
    "diner_name",
    "id_number",
    "category",
    "funder",
    "rule_key",
    "rule_version",
    "price_fen",
    "elder_paid_fen",
    "subsidy_fen",
    "subsidy_yuan",
]


async def claim_csv(uow: UnitOfWork, canteen: Canteen, month: str) -> str:
    """One row per claimed subsidy line of a served meal: what the government is asked to reimburse."""
    first, nxt = _month(month)
    rows = await uow.session.execute(
        sa.select(
            ORDERS.c.meal_date,
            ORDERS.c.slot,
            ORDERS.c.id,
            ORDERS.c.diner_id,
            DINERS.c.name,
            DINERS.c.id_number_masked,
            LINES.c.category,
            LINES.c.funder,
            LINES.c.rule_key,
            LINES.c.rule_version,
            ORDERS.c.price_fen,
            ORDERS.c.elder_pays_fen,
            LINES.c.amount_fen,
        )
        .join(ORDERS, ORDERS.c.id == LINES.c.order_id)
        .join(DINERS, DINERS.c.id == ORDERS.c.diner_id)
        .where(
            ORDERS.c.canteen_id == canteen.id,
            ORDERS.c.meal_date >= first,
            ORDERS.c.meal_date < nxt,
            ORDERS.c.status.in_(SERVED_STATUSES),
            LINES.c.status == LineStatus.claimed.value,
        )
        .order_by(ORDERS.c.meal_date, sa.case(SLOT_RANK, value=ORDERS.c.slot, else_=9), ORDERS.c.id, LINES.c.rule_key)
    )
    return csvfile.csv_text(
        CSV_HEADER,
        (
            [
                canteen.code,
                month,
                r[0].isoformat(),
                r[1],
                r[2],
                r[3],
                r[4],
                r[5] or "",
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
                r[11],
                r[12],
                _yuan(r[12]),
            ]
            for r in rows
        ),
    )


async def closed_settlement(uow: UnitOfWork, canteen: Canteen, month: str) -> SettlementRow | None:
    _month(month)
    found = await uow.session.execute(
        select(SettlementRow).where(SettlementRow.canteen_id == canteen.id, SettlementRow.month == month)
    )
    return found.scalar_one_or_none()


async def settlement(uow: UnitOfWork, canteen: Canteen, month: str) -> Settlement:
    closed = await closed_settlement(uow, canteen, month)
    if closed is not None:
        return Settlement.model_validate(closed.figures)
    return await compute_settlement(uow, canteen, month)


async def close_settlement(uow: UnitOfWork, who: Principal, canteen: Canteen, month: str) -> Settlement:
    _, nxt = _month(month)
    if config.today() < nxt:
        raise conflict(
            "month_not_over", _t("{month} is not over yet; close it from {first_day}.", month=month, first_day=nxt)
        )
    if await closed_settlement(uow, canteen, month) is not None:
        raise conflict(
            "settlement_closed", _t("{month} is already closed for {canteen}.", month=month, canteen=canteen.name)
        )
    figures = await compute_settlement(uow, canteen, month)
    if figures.reconciliation.unsettled_bookings:
        raise conflict(
            "unsettled_orders",
            _t(
                "{unsettled_bookings} orders are still booked (deliveries not confirmed?): "
                "confirm or cancel them first.",
                unsettled_bookings=figures.reconciliation.unsettled_bookings,
            ),
            unsettled=figures.reconciliation.unsettled_bookings,
        )
    content = await claim_csv(uow, canteen, month)
    row = SettlementRow(
        canteen_id=canteen.id,
        month=month,
        figures={},
        claim_csv=content,
        csv_sha256=csvfile.sha256_of(content),
        closed_by=who.sub,
    )
    figures = figures.model_copy(
        update={"status": "closed", "closed_at": row.closed_at, "closed_by": who.sub, "csv_sha256": row.csv_sha256}
    )
    row.figures = figures.model_dump(mode="json")
    uow.session.add(row)
    try:
        await uow.session.flush()
    except sa.exc.IntegrityError as exc:
        raise conflict("settlement_closed", _t("{month} was closed at the same time.", month=month)) from exc
    return figures


# --- the elder's monthly statement -------------------------------------------------------------------------------


class DinerStatement(BaseModel):
    diner_id: UUID
    month: str
    meals: int
    price_fen: int
    subsidy_fen: int
    paid_fen: int
    subsidy_by_funder: dict[str, int]
    orders_by_status: dict[str, int]


async def diner_statement(uow: UnitOfWork, diner: Diner, month: str) -> DinerStatement:
    """What the elder ate in a month, what it cost, what the subsidies paid and what they (or family) paid."""
    first, nxt = _month(month)
    mine = sa.and_(ORDERS.c.diner_id == diner.id, ORDERS.c.meal_date >= first, ORDERS.c.meal_date < nxt)
    served = ORDERS.c.status.in_(SERVED_STATUSES)
    by_status = await _count_by(uow, ORDERS.c.status, mine)
    totals = (
        await uow.session.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(ORDERS.c.price_fen), 0),
                sa.func.coalesce(sa.func.sum(ORDERS.c.subsidy_fen), 0),
                sa.func.coalesce(sa.func.sum(ORDERS.c.elder_pays_fen), 0),
            ).where(mine, served)
        )
    ).one()
    funders = {
        f: int(a)
        for f, a in await uow.session.execute(
            sa.select(LINES.c.funder, sa.func.sum(LINES.c.amount_fen))
            .join(ORDERS, ORDERS.c.id == LINES.c.order_id)
            .where(mine, served, LINES.c.status != LineStatus.cancelled.value)
            .group_by(LINES.c.funder)
        )
    }
    return DinerStatement(
        diner_id=diner.id,
        month=month,
        meals=int(totals[0]),
        price_fen=int(totals[1]),
        subsidy_fen=int(totals[2]),
        paid_fen=int(totals[3]),
        subsidy_by_funder=funders,
        orders_by_status=by_status,
    )
