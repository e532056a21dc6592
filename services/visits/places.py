"""Places and homes: communities, compounds, buildings and households, as grid workers and staff see them.
Use cases take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure_changeable, visible_or_404
from minsheng.platform.errors import UniqueRule, not_found
from minsheng.platform.fields import apply_patch
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.visits import cadence, schedule
from services.visits.access import Viewer, sees, writes
from services.visits.config import today
from services.visits.models import (
    Building,
    BuildingCreate,
    Community,
    CommunityCreate,
    CommunityPublic,
    Compound,
    CompoundCreate,
    Household,
    HouseholdCreate,
    HouseholdFilters,
    HouseholdPublic,
    HouseholdUpdate,
)

COMMUNITY_EXISTS = UniqueRule(Community, ["code"], "community_exists", "A community with this code already exists.")
COMPOUND_EXISTS = UniqueRule(Compound, ["code"], "compound_exists", "A compound with this code already exists.")
BUILDING_EXISTS = UniqueRule(
    Building, ["compound", "name"], "building_exists", "The compound has a building of this name."
)
HOUSEHOLD_EXISTS = UniqueRule(
    Household, ["building_id", "unit", "room"], "household_exists", "This door is already registered."
)

# --- places -------------------------------------------------------------------------------------------------


async def create_community(uow: UnitOfWork, data: CommunityCreate) -> Community:
    if (await community_by_code(uow, data.code)) is not None:
        raise COMMUNITY_EXISTS.problem(_t("A community with code {code!r} already exists.", code=data.code))
    community = Community(**data.model_dump())
    uow.session.add(community)
    return community


async def community_by_code(uow: UnitOfWork, code: str) -> Community | None:
    return (await uow.session.execute(select(Community).where(Community.code == code))).scalar_one_or_none()


async def list_communities(uow: UnitOfWork, viewer: Viewer, *, page: PageRequest) -> Page[CommunityPublic]:
    query = select(Community)
    if not viewer.is_admin:
        visible = set(viewer.principal.scoped_values("community")) if viewer.is_staff else set()
        compounds = set(viewer.principal.scoped_values("compound")) if viewer.is_staff else set()
        if viewer.worker is not None:
            visible.add(viewer.worker.community)
            compounds |= viewer.whole_compounds
        if compounds:
            visible.update(
                (
                    await uow.session.execute(
                        select(Compound.community).where(col(Compound.code).in_(sorted(compounds)))
                    )
                ).scalars()
            )
        query = query.where(col(Community.code).in_(sorted(visible)))
    by_code = Keyset((Community.code,), kinds=(str,), descending=False)
    communities = await keyset_page(uow.session, query, by_code, page)
    codes = [c.code for c in communities.items]
    compound_counts: dict[str, int] = dict(
        (
            await uow.session.execute(
                sa.select(col(Compound.community), sa.func.count())
                .where(col(Compound.community).in_(codes))
                .group_by(col(Compound.community))
            )
        ).all()
    )
    household_counts: dict[str, int] = dict(
        (
            await uow.session.execute(
                sa.select(col(Household.community), sa.func.count())
                .where(col(Household.community).in_(codes), viewer.clause(Household))
                .group_by(col(Household.community))
            )
        ).all()
    )
    return Page[CommunityPublic](
        items=[
            CommunityPublic(
                id=c.id,
                code=c.code,
                name=c.name,
                compounds=compound_counts.get(c.code, 0),
                households=household_counts.get(c.code, 0),
            )
            for c in communities.items
        ],
        next_cursor=communities.next_cursor,
    )


async def compound_by_code(uow: UnitOfWork, code: str) -> Compound | None:
    return (await uow.session.execute(select(Compound).where(Compound.code == code))).scalar_one_or_none()


async def create_compound(uow: UnitOfWork, viewer: Viewer, data: CompoundCreate) -> Compound:
    community = await community_by_code(uow, data.community)
    community = visible_or_404(community, lambda c: viewer.staff_covers(c.code), "community", data.community)
    if (await compound_by_code(uow, data.code)) is not None:
        raise COMPOUND_EXISTS.problem(_t("A compound with code {code!r} already exists.", code=data.code))
    compound = Compound(**data.model_dump())
    uow.session.add(compound)
    return compound


async def get_compound(uow: UnitOfWork, viewer: Viewer, code: str) -> Compound:
    compound = await compound_by_code(uow, code)
    if compound is None or not (
        viewer.staff_covers(compound.community, compound.code)
        or compound.code in viewer.whole_compounds
        or (viewer.buildings and await _has_assigned_building(uow, viewer, compound))
    ):
        raise not_found("compound", code)
    return compound


async def _has_assigned_building(uow: UnitOfWork, viewer: Viewer, compound: Compound) -> bool:
    found = await uow.session.execute(
        select(Building.id)
        .where(Building.compound == compound.code, col(Building.id).in_(list(viewer.buildings)))
        .limit(1)
    )
    return found.first() is not None


async def list_compounds(
    uow: UnitOfWork, viewer: Viewer, *, community: str | None, page: PageRequest
) -> Page[Compound]:
    query = select(Compound)
    if not viewer.is_admin:
        parts: list[Any] = []
        if viewer.is_staff:
            parts += [
                col(Compound.community).in_(sorted(viewer.principal.scoped_values("community"))),
                col(Compound.code).in_(sorted(viewer.principal.scoped_values("compound"))),
            ]
        if viewer.worker is not None:
            assigned = set(viewer.whole_compounds)
            if viewer.buildings:
                assigned.update(
                    (
                        await uow.session.execute(
                            select(Building.compound).where(col(Building.id).in_(list(viewer.buildings)))
                        )
                    ).scalars()
                )
            parts.append(col(Compound.code).in_(sorted(assigned)))
        query = query.where(sa.or_(*parts) if parts else sa.false())
    if community:
        query = query.where(Compound.community == community)
    return await keyset_page(uow.session, query, Keyset.by_id(Compound), page)


async def create_building(uow: UnitOfWork, viewer: Viewer, data: BuildingCreate) -> Building:
    compound = visible_or_404(
        await compound_by_code(uow, data.compound),
        lambda c: viewer.staff_covers(c.community, c.code),
        "compound",
        data.compound,
    )
    dup = await uow.session.execute(
        select(Building.id).where(Building.compound == compound.code, Building.name == data.name)
    )
    if dup.first() is not None:
        raise BUILDING_EXISTS.problem(
            _t("{compound} already has a building {building!r}.", compound=compound.name, building=data.name)
        )
    building = Building(**data.model_dump(), community=compound.community)
    uow.session.add(building)
    return building


async def get_building(uow: UnitOfWork, viewer: Viewer, building_id: UUID) -> Building:
    building = await uow.session.get(Building, building_id)
    return visible_or_404(building, lambda b: viewer.covers(b.community, b.compound, b.id), "building", building_id)


async def list_buildings(uow: UnitOfWork, viewer: Viewer, *, compound: str | None, page: PageRequest) -> Page[Building]:
    query = select(Building).where(viewer.clause(_BuildingScope))
    if compound:
        query = query.where(Building.compound == compound)
    return await keyset_page(uow.session, query, Keyset.by_id(Building), page)


class _BuildingScope:
    """Buildings scope like everything else, their own id being the building."""

    community = Building.community
    compound = Building.compound
    building_id = Building.id


# --- households ---------------------------------------------------------------------------------------------


def household_public(h: Household, day: date | None = None) -> HouseholdPublic:
    public = HouseholdPublic.model_validate(h, from_attributes=True)
    public.overdue = cadence.is_overdue(h.next_due_on, day or today())
    return public


async def create_household(uow: UnitOfWork, viewer: Viewer, data: HouseholdCreate) -> Household:
    building = await uow.session.get(Building, data.building_id)
    if building is None:
        raise not_found("building", data.building_id)
    ensure_changeable(
        viewer.covers(building.community, building.compound, building.id),
        viewer.may_write(building.community, building.compound, building.id),
        "building",
        data.building_id,
    )
    dup = await uow.session.execute(
        select(Household.id).where(
            Household.building_id == building.id, Household.unit == data.unit, Household.room == data.room
        )
    )
    if (row := dup.first()) is not None:
        raise HOUSEHOLD_EXISTS.problem(household_id=str(row[0]))
    compound = await compound_by_code(uow, building.compound)
    household = Household(
        **data.model_dump(),
        community=building.community,
        compound=building.compound,
        address=address_of(compound.name if compound else building.compound, building.name, data.unit, data.room),
    )
    await schedule.refresh(uow, household)
    uow.session.add(household)
    return household


def address_of(compound_name: str, building_name: str, unit: str | None, room: str) -> str:
    return " ".join(p for p in (compound_name, building_name, f"{unit}单元" if unit else None, f"{room}室") if p)


async def get_household(uow: UnitOfWork, viewer: Viewer, household_id: UUID, *, for_update: bool = False) -> Household:
    household = await uow.session.get(Household, household_id, with_for_update=for_update and uow.db.is_postgres)
    return visible_or_404(household, lambda h: sees(viewer, h, h.id), "household", household_id)


async def update_household(uow: UnitOfWork, viewer: Viewer, household: Household, data: HouseholdUpdate) -> Household:
    ensure_changeable(sees(viewer, household), writes(viewer, household), "household", household.id)
    changes = apply_patch(household, data)
    if {"unit", "room"} & changes.keys():
        building = await uow.session.get(Building, household.building_id)
        compound = await compound_by_code(uow, household.compound)
        household.address = address_of(
            compound.name if compound else household.compound,
            building.name if building else "",
            household.unit,
            household.room,
        )
    household.updated_at = utcnow()
    return household


async def list_households(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    filters: HouseholdFilters,
    page: PageRequest,
) -> Page[Household]:
    query = select(Household).where(viewer.clause(Household, household_col=Household.id))
    query = where_given(
        query,
        (Household.community, filters.community),
        (Household.compound, filters.compound),
        (Household.building_id, filters.building_id),
        (Household.tier, filters.tier),
        (Household.attention, filters.attention),
    )
    if filters.overdue is True:
        query = query.where(col(Household.next_due_on) < today())
    elif filters.overdue is False:
        query = query.where(sa.or_(col(Household.next_due_on).is_(None), col(Household.next_due_on) >= today()))
    return await keyset_page(uow.session, query, Keyset.by_id(Household), page)
