"""A rider's statement read from the ledger, and the local month a request names. Use cases: take a unit of work,
never commit."""

from datetime import date
from uuid import UUID

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlmodel import col, select

from minsheng.platform.errors import invalid
from minsheng.platform.inputs import MonthText, month_start
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config
from services.points.models import LedgerEntry, LedgerEntryFilters

ENTRIES: sa.Table = table_of(LedgerEntry)


async def statement(
    uow: UnitOfWork,
    rider_id: UUID,
    *,
    page: PageRequest,
    filters: LedgerEntryFilters,
) -> Page[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.rider_id == rider_id)
    if filters.kind is not None:
        query = query.where(LedgerEntry.kind == filters.kind.value)
    if filters.since is not None:
        query = query.where(col(LedgerEntry.created_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(LedgerEntry.created_at) < filters.until)
    return await keyset_page(uow.session, query, Keyset((LedgerEntry.created_at, LedgerEntry.id)), page)


def parse_month(value: str | None) -> date:
    settings = config.get()
    if not value:
        return settings.local_month()
    try:
        parsed = month_start(TypeAdapter(MonthText).validate_python(value))
    except ValidationError as exc:
        raise invalid(
            "validation_error",
            "The request is not valid",
            "month must look like 2026-11",
            field="month",
            message="expected YYYY-MM",
        ) from exc
    return parsed
