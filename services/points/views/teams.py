"""Routes under ``/points/teams``: teams led by a red rider."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.points import riders
from services.points.models import CommunityCode, Team, TeamCreate, TeamPublic, TeamUpdate
from services.points.views.deps import RiderOrStaff, Staff

router = APIRouter(tags=["teams"])


def _with_members(team: Team, members: int) -> TeamPublic:
    return TeamPublic.model_validate(team, from_attributes=True).model_copy(update={"members": members})


async def _team_public(uow: UoW, team: Team) -> TeamPublic:
    return _with_members(team, await riders.team_size(uow, team.id))


@router.post("/teams", status_code=201, summary="Create a team, led by a red rider")
async def create_team(body: TeamCreate, uow: UoW, who: Staff) -> TeamPublic:
    team = await riders.create_team(uow, who, body)
    await uow.commit()
    return await _team_public(uow, team)


@router.get("/teams")
async def list_teams(
    uow: UoW,
    who: RiderOrStaff,
    page: PageQuery,
    community: CommunityCode | None = None,
) -> Page[TeamPublic]:
    teams = await riders.list_teams(uow, page=page, community=community)
    return teams.map(lambda row: _with_members(*row))


@router.get("/teams/{team_id}")
async def get_team(team_id: UUID, uow: UoW, who: RiderOrStaff) -> TeamPublic:
    team = await riders.get_team(uow, who, team_id)
    return await _team_public(uow, team)


@router.patch("/teams/{team_id}")
async def update_team(team_id: UUID, body: TeamUpdate, uow: UoW, who: Staff) -> TeamPublic:
    team = await riders.get_team(uow, who, team_id)
    await riders.update_team(uow, who, team, body)
    await uow.commit()
    return await _team_public(uow, team)
