"""Riders and their teams: registration, verification and suspension by staff, the rider's own profile, team
leaders. Use cases take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.points import RiderAccountLinked
from minsheng.platform.access import ensure, outside_scope, visible_or_404
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, UniqueRule, conflict, wrong_status
from minsheng.platform.fields import apply_patch
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher, seal_phone_on
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points.access import covers_rider, places_in, sees_team
from services.points.models import (
    Rider,
    RiderBalance,
    RiderCreate,
    RiderFilters,
    RiderRole,
    RiderSelfUpdate,
    RiderStaffUpdate,
    RiderStatus,
    Team,
    TeamCreate,
    TeamUpdate,
)

RIDER_ALREADY_REGISTERED = UniqueRule(
    Rider, ["subject"], "rider_already_registered", "This account is already registered as a rider."
)
TEAM_NAME_TAKEN = UniqueRule(Team, ["name"], "team_name_taken", "A team of this name exists already.")

# --- riders -------------------------------------------------------------------------------------------------


async def register_rider(uow: UnitOfWork, subject: str, data: RiderCreate, fc: FieldCipher) -> Rider:
    existing = (await uow.session.execute(select(Rider).where(Rider.subject == subject))).scalar_one_or_none()
    if existing is not None:
        raise RIDER_ALREADY_REGISTERED.problem(rider_id=str(existing.id))
    rider = Rider(subject=subject, **data.model_dump())
    seal_phone_on(rider, fc)
    uow.session.add(rider)
    await uow.session.flush()
    uow.session.add(RiderBalance(rider_id=rider.id, balance=0))
    uow.emit(RiderAccountLinked(rider_id=rider.id, account_id=subject, linked_at=utcnow()))
    return rider


async def rider_by_subject(uow: UnitOfWork, subject: str) -> Rider:
    rider = await find_rider(uow, subject)
    if rider is None:
        raise not_registered()
    return rider


async def find_rider(uow: UnitOfWork, subject: str) -> Rider | None:
    return (await uow.session.execute(select(Rider).where(Rider.subject == subject))).scalar_one_or_none()


RIDERS: sa.Table = table_of(Rider)


@dataclass(frozen=True)
class RiderSummary:
    """What a hazard report needs of its rider: read as a Core row, no ORM object."""

    id: UUID
    status: str
    community: str | None


def not_registered() -> Problem:
    return Problem(404, "rider_not_registered", "Not registered as a rider", "Register first with POST /points/riders.")


def ensure_active(rider: Rider | RiderSummary) -> None:
    """Hazard reports are open to every registered rider who is not suspended (a fire is a fire)."""
    if rider.status == RiderStatus.suspended:
        raise Problem(403, "rider_suspended", "Rider suspended", "A suspended rider cannot do this.")


def ensure_verified(rider: Rider | RiderSummary) -> None:
    """Tasks and redemption need a rider staff have verified."""
    ensure_active(rider)
    if rider.status != RiderStatus.active:
        raise Problem(
            403,
            "rider_not_verified",
            "Rider not verified yet",
            "Staff must verify your registration before you can take tasks or redeem points.",
        )


async def update_self(uow: UnitOfWork, rider: Rider, data: RiderSelfUpdate, fc: FieldCipher) -> Rider:
    changes = apply_patch(rider, data, exclude_none=True)
    if "phone" in changes:
        rider.phone_enc = None
        seal_phone_on(rider, fc)
    rider.updated_at = utcnow()
    return rider


async def get_rider(uow: UnitOfWork, who: Principal, rider_id: UUID, *, for_update: bool = False) -> Rider:
    rider = await uow.session.get(Rider, rider_id, with_for_update=for_update and uow.db.is_postgres)
    return visible_or_404(rider, lambda r: covers_rider(who, r), "rider", rider_id)


async def list_riders(
    uow: UnitOfWork,
    who: Principal,
    *,
    page: PageRequest,
    filters: RiderFilters,
) -> Page[Rider]:
    query = select(Rider)
    if not who.is_admin:
        query = query.where(col(Rider.community).in_(who.scoped_values("community")))
    query = where_given(
        query,
        (Rider.community, filters.community),
        (Rider.team_id, filters.team_id),
        (Rider.flagged, filters.flagged),
    )
    if filters.status is not None:
        query = query.where(Rider.status == filters.status.value)
    if filters.role is not None:
        query = query.where(Rider.role == filters.role.value)
    return await keyset_page(uow.session, query, Keyset((Rider.created_at, Rider.id)), page)


def verify_rider(rider: Rider, who: Principal) -> Rider:
    if rider.status == RiderStatus.suspended:
        raise wrong_status("rider_suspended", "Reinstate the rider before verifying.", current_status=rider.status)
    if rider.status == RiderStatus.pending:
        rider.status = RiderStatus.active
        rider.verified_at = utcnow()
        rider.verified_by = who.sub
        rider.updated_at = utcnow()
    return rider


def suspend_rider(rider: Rider, reason: str) -> Rider:
    rider.status = RiderStatus.suspended
    rider.status_reason = reason
    rider.updated_at = utcnow()
    return rider


def reinstate_rider(rider: Rider, reason: str) -> Rider:
    if rider.status == RiderStatus.suspended:
        rider.status = RiderStatus.active if rider.verified_at else RiderStatus.pending
        rider.status_reason = reason
        rider.updated_at = utcnow()
    return rider


def clear_flag(rider: Rider, reason: str) -> Rider:
    rider.flagged = False
    rider.flag_reason = f"cleared: {reason}"[:500]
    rider.updated_at = utcnow()
    return rider


async def staff_update_rider(uow: UnitOfWork, who: Principal, rider: Rider, data: RiderStaffUpdate) -> Rider:
    if data.role is not None:
        if rider.role == RiderRole.red and data.role != RiderRole.red:
            leading = (await uow.session.execute(select(Team.id).where(Team.leader_rider_id == rider.id))).first()
            if leading is not None:
                raise conflict(
                    "rider_leads_team",
                    "Give the team another leader before changing this role.",
                    team_id=str(leading[0]),
                )
        rider.role = data.role
    if data.community is not None:
        ensure(places_in(who, data.community), outside_scope("You cannot move riders to that community."))
        rider.community = data.community
    if data.leave_team:
        rider.team_id = None
    elif data.team_id is not None:
        team = await get_team(uow, who, data.team_id)
        rider.team_id = team.id
    rider.updated_at = utcnow()
    return rider


# --- teams ----------------------------------------------------------------------------------------------------


async def _leader(uow: UnitOfWork, who: Principal, rider_id: UUID) -> Rider:
    leader = await get_rider(uow, who, rider_id)
    if leader.role != RiderRole.red:
        raise conflict("leader_not_red", "Teams are led by red riders; make this rider red first.")
    return leader


async def create_team(uow: UnitOfWork, who: Principal, data: TeamCreate) -> Team:
    ensure(places_in(who, data.community), outside_scope("You cannot create teams in that community."))
    if (await uow.session.execute(select(Team.id).where(Team.name == data.name))).first() is not None:
        raise TEAM_NAME_TAKEN.problem(_t("A team named {name!r} exists already.", name=data.name))
    team = Team(name=data.name, community=data.community, leader_rider_id=data.leader_rider_id)
    uow.session.add(team)
    if data.leader_rider_id is not None:
        leader = await _leader(uow, who, data.leader_rider_id)
        await uow.session.flush()
        leader.team_id = team.id
    return team


async def get_team(uow: UnitOfWork, who: Principal, team_id: UUID) -> Team:
    return visible_or_404(await uow.session.get(Team, team_id), lambda t: sees_team(who, t), "team", team_id)


async def update_team(uow: UnitOfWork, who: Principal, team: Team, data: TeamUpdate) -> Team:
    if data.name is not None and data.name != team.name:
        if (await uow.session.execute(select(Team.id).where(Team.name == data.name))).first() is not None:
            raise TEAM_NAME_TAKEN.problem(_t("A team named {name!r} exists already.", name=data.name))
        team.name = data.name
    if data.community is not None:
        ensure(places_in(who, data.community), outside_scope("You cannot move teams to that community."))
        team.community = data.community
    if data.leader_rider_id is not None:
        leader = await _leader(uow, who, data.leader_rider_id)
        team.leader_rider_id = leader.id
        leader.team_id = team.id
    return team


async def list_teams(uow: UnitOfWork, *, page: PageRequest, community: str | None = None) -> Page[tuple[Team, int]]:
    riders: sa.Table = table_of(Rider)
    members = (
        sa.select(sa.func.count())
        .where(riders.c.team_id == Team.id)  # type: ignore[arg-type]
        .scalar_subquery()
    )
    query = sa.select(Team, members)
    if community is not None:
        query = query.where(col(Team.community) == community)
    keyset = Keyset((Team.created_at, Team.id), descending=False)
    rows = [(t, int(n)) for t, n in (await uow.session.execute(keyset.query(query, page))).all()]
    return keyset.page(rows, page, lambda r: r[0])


async def team_size(uow: UnitOfWork, team_id: UUID) -> int:
    return int(
        (
            await uow.session.execute(
                sa.select(sa.func.count()).select_from(Rider).where(col(Rider.team_id) == team_id)
            )
        ).scalar_one()
    )
