"""Routes under ``/visits/rounds``: carpet-style rounds and their progress."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import coverage, rounds
from services.visits.models import CodeFilter, RoundCreate, RoundProgress, RoundPublic
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["rounds"])


@router.post(
    "/rounds",
    status_code=201,
    dependencies=[STAFF],
    summary="Start a carpet-style round over a community (or, for admins, the district)",
)
async def create_round(body: RoundCreate, uow: UoW, who: Who) -> RoundPublic:
    rnd = await rounds.create_round(uow, who, body)
    await commit(uow)
    return RoundPublic.model_validate(rnd, from_attributes=True)


@router.get("/rounds", dependencies=[FIELD])
async def list_rounds(uow: UoW, who: Who, *, community: CodeFilter = None, page: PageQuery) -> Page[RoundPublic]:
    found = await rounds.list_rounds(uow, who, page=page, community=community)
    return found.map(from_row(RoundPublic))


@router.get(
    "/rounds/{round_id}/progress", dependencies=[FIELD], summary="Households reached / total, by compound and by worker"
)
async def round_progress(round_id: UUID, uow: UoW, who: Who) -> RoundProgress:
    rnd = await rounds.get_round(uow, who, round_id)
    return await coverage.round_progress(uow, who, rnd)
