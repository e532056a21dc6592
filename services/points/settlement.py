"""A merchant's monthly settlement: the summary and the CSV statement. Use cases: take a unit of work, never commit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.platform import csvfile
from minsheng.platform.ids import as_utc
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings
from services.points import config
from services.points.models import Offer, Redemption, RedemptionStatus, StatementSummary
from services.points.redemptions import rider_ref, yuan

OFFERS: sa.Table = table_of(Offer)
REDEMPTIONS: sa.Table = table_of(Redemption)


# --- settlement -----------------------------------------------------------------------------------------------


async def month_rows(uow: UnitOfWork, merchant_id: UUID, month: date) -> list[Any]:
    start, end = config.get().month_bounds(month)
    rows = await uow.session.execute(
        sa.select(REDEMPTIONS, OFFERS.c.title.label("offer_title"), OFFERS.c.kind.label("offer_kind"))
        .join(OFFERS, OFFERS.c.id == REDEMPTIONS.c.offer_id)
        .where(
            REDEMPTIONS.c.merchant_id == merchant_id, REDEMPTIONS.c.created_at >= start, REDEMPTIONS.c.created_at < end
        )
        .order_by(REDEMPTIONS.c.created_at, REDEMPTIONS.c.id)
    )
    return list(rows.all())


async def statement_summary(uow: UnitOfWork, merchant_id: UUID, month: date) -> StatementSummary:
    rows = await month_rows(uow, merchant_id, month)
    done = [r for r in rows if r.status == RedemptionStatus.completed]
    by_offer: dict[UUID, dict[str, Any]] = {}
    for r in done:
        item = by_offer.setdefault(
            r.offer_id,
            {
                "offer_id": str(r.offer_id),
                "title": r.offer_title,
                "redemptions": 0,
                "quantity": 0,
                "points": 0,
                "discount_fen": 0,
            },
        )
        item["redemptions"] += 1
        item["quantity"] += r.quantity
        item["points"] += r.points
        item["discount_fen"] += r.discount_fen or 0
    offers = [
        {**{k: v for k, v in o.items() if k != "discount_fen"}, "discount_yuan": str(yuan(o["discount_fen"]))}
        for o in by_offer.values()
    ]
    return StatementSummary(
        merchant_id=merchant_id,
        month=f"{month:%Y-%m}",
        redemptions=len(done),
        voided=len(rows) - len(done),
        points=sum(r.points for r in done),
        discount_yuan=yuan(sum(r.discount_fen or 0 for r in done)) or Decimal("0.00"),
        by_offer=offers,
    )


CSV_COLUMNS = [
    "redemption_id",
    "created_at_local",
    "offer_id",
    "offer_title",
    "offer_kind",
    "quantity",
    "points",
    "discount_yuan",
    "status",
    "voided_at_local",
    "rider_ref",
]


async def statement_csv(uow: UnitOfWork, settings: Settings, merchant_id: UUID, month: date) -> str:
    """One line per redemption (voided ones included, marked), local times, then a total line. Starts with a
    UTF-8 BOM so spreadsheet software opens the Chinese text correctly."""
    tz = config.get().tz
    rows = await month_rows(uow, merchant_id, month)
    lines: list[list[object]] = []
    total_points, total_fen = 0, 0
    for r in rows:
        if r.status == RedemptionStatus.completed:
            total_points += r.points
            total_fen += r.discount_fen or 0
        lines.append(
            [
                str(r.id),
                as_utc(r.created_at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                str(r.offer_id),
                r.offer_title,
                r.offer_kind,
                r.quantity,
                r.points,
                yuan(r.discount_fen) or "",
                r.status,
                as_utc(r.voided_at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if r.voided_at else "",
                rider_ref(settings, merchant_id, r.rider_id),
            ]
        )
    lines.append(["TOTAL (completed)", "", "", "", "", "", total_points, yuan(total_fen), "", "", ""])
    return csvfile.csv_text(CSV_COLUMNS, lines)
