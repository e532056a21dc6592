"""Canteens and their meal slots: registering and updating a canteen, who manages it, the list residents see.
Use cases take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure, visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, UniqueRule, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import json_list_holds, table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import access
from services.canteen.models import (
    Canteen,
    CanteenCreate,
    CanteenPublic,
    CanteenStatus,
    CanteenUpdate,
    MealSlotPublic,
    MealSlotRow,
    MealSlotUpsert,
    Slot,
)

CANTEEN_CODE_TAKEN = UniqueRule(Canteen, ["code"], "canteen_code_taken", "A canteen with this code exists.")

SLOT_RANK = {Slot.breakfast.value: 0, Slot.lunch.value: 1, Slot.dinner.value: 2}
_LISTED_BY_CODE = Keyset((col(Canteen.code),), kinds=(str,), descending=False)


def touch(obj: Any) -> None:
    obj.updated_at = utcnow()


async def find_canteen(uow: UnitOfWork, ident: str | UUID) -> Canteen | None:
    if isinstance(ident, UUID):
        return await uow.session.get(Canteen, ident)
    try:
        return await uow.session.get(Canteen, UUID(ident))
    except ValueError:
        found = await uow.session.execute(select(Canteen).where(Canteen.code == ident))
        return found.scalar_one_or_none()


async def get_canteen(uow: UnitOfWork, ident: str | UUID) -> Canteen:
    canteen = await find_canteen(uow, ident)
    if canteen is None:
        raise not_found("canteen", ident)
    return canteen


async def managed_canteen(uow: UnitOfWork, who: Principal, ident: str | UUID) -> Canteen:
    return visible_or_404(await find_canteen(uow, ident), lambda c: access.manages(who, c), "canteen", ident)


async def create_canteen(uow: UnitOfWork, who: Principal, data: CanteenCreate) -> Canteen:
    ensure(
        access.staff_of(who, data.community),
        Problem(
            403,
            "forbidden_scope",
            "Not allowed in this community",
            _t("Only staff of {community} (or admin) may open a canteen there.", community=data.community),
        ),
    )
    existing = await uow.session.execute(select(Canteen.id).where(Canteen.code == data.code))
    if existing.first() is not None:
        raise CANTEEN_CODE_TAKEN.problem(_t("A canteen with code {code} exists.", code=data.code))
    canteen = Canteen(**data.model_dump())
    uow.session.add(canteen)
    return canteen


async def update_canteen(uow: UnitOfWork, canteen: Canteen, data: CanteenUpdate) -> Canteen:
    changes = data.model_dump(exclude_unset=True)
    if "communities" in changes and changes["communities"] is not None:
        changes["communities"] = sorted(set(changes["communities"]))
    for name, value in changes.items():
        if value is None and name in {"name", "address", "operator", "status", "communities", "delivery_points"}:
            continue
        setattr(canteen, name, value)
    touch(canteen)
    return canteen


async def slots_of(uow: UnitOfWork, canteen_ids: Iterable[UUID]) -> dict[UUID, list[MealSlotRow]]:
    ids = list(canteen_ids)
    out: dict[UUID, list[MealSlotRow]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await uow.session.execute(select(MealSlotRow).where(col(MealSlotRow.canteen_id).in_(ids)))
    for row in rows.scalars():
        out[row.canteen_id].append(row)
    for slots in out.values():
        slots.sort(key=lambda s: SLOT_RANK[s.slot])
    return out


async def slot_of(uow: UnitOfWork, canteen_id: UUID, slot: str) -> MealSlotRow | None:
    return await uow.session.get(MealSlotRow, (canteen_id, slot))


async def upsert_slot(uow: UnitOfWork, canteen: Canteen, slot: Slot, data: MealSlotUpsert) -> MealSlotRow:
    row = await slot_of(uow, canteen.id, slot.value)
    if row is None:
        row = MealSlotRow(canteen_id=canteen.id, slot=slot.value, **data.model_dump())
        uow.session.add(row)
    else:
        for name, value in data.model_dump().items():
            setattr(row, name, value)
    return row


def canteen_public(canteen: Canteen, slots: Sequence[MealSlotRow]) -> CanteenPublic:
    return CanteenPublic.model_validate(
        {
            **canteen.model_dump(),
            "slots": [MealSlotPublic.model_validate({**s.model_dump(), "slot": s.slot}) for s in slots],
        }
    )


async def list_canteens(
    uow: UnitOfWork, page: PageRequest, *, community: str | None, status: CanteenStatus | None
) -> Page[Canteen]:
    query = select(Canteen)
    if status is not None:
        query = query.where(Canteen.status == status)
    if community is not None:
        serves = json_list_holds(col(Canteen.communities), community, postgres=uow.db.is_postgres)
        query = query.where(sa.or_(col(Canteen.community) == community, serves))
    return await keyset_page(uow.session, query, _LISTED_BY_CODE, page)


CANTEENS = table_of(Canteen)
# The columns ``access.manages`` looks at, for reads that need a canteen's id and who manages it, not the ORM object.
_CANTEEN_REF_COLUMNS = (CANTEENS.c.id, CANTEENS.c.code, CANTEENS.c.community, CANTEENS.c.communities)
_CANTEEN_BY_ID = sa.select(*_CANTEEN_REF_COLUMNS).where(CANTEENS.c.id == sa.bindparam("ident"))
_CANTEEN_BY_CODE = sa.select(*_CANTEEN_REF_COLUMNS).where(CANTEENS.c.code == sa.bindparam("ident"))


async def canteen_row(uow: UnitOfWork, ident: str) -> sa.Row[Any]:
    """A canteen's id, code and communities (a Core row: enough for ``access.manages``), by id or code; 404
    otherwise. Cheaper than ``get_canteen`` for reads that need no ORM object."""
    by_id, value = canteen_key(ident)
    result = await uow.session.execute(_CANTEEN_BY_ID if by_id else _CANTEEN_BY_CODE, {"ident": value})
    row: sa.Row[Any] | None = result.first()  # type: ignore[assignment]
    if row is None:
        raise not_found("canteen", ident)
    return row


def canteen_key(ident: str) -> tuple[bool, Any]:
    """(by id?, value) for a canteen reference: a UUID is an id, anything else a code (as ``find_canteen``)."""
    try:
        return True, UUID(ident)
    except ValueError:
        return False, ident
