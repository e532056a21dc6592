"""``/votes/…``: votes on community matters (事项投票) — staff open and close them, residents cast one ballot."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Query

from minsheng.platform.errors import conflict
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import Runtime, UoW
from services.issues import votes
from services.issues.models import BallotCreate, BallotRecorded, Eligibility, PlaceCode, VoteCreate, VotePublic
from services.issues.views.deps import Caller, Staff

router = APIRouter(tags=["votes"])


@router.post("/votes", status_code=201, summary="Staff: open a vote")
async def create_vote(body: VoteCreate, uow: UoW, who: Staff, runtime: Runtime) -> VotePublic:
    vote = votes.open_vote(uow, who, body)
    await uow.commit()
    return await votes.view(uow, who, vote, runtime.settings.secret)


@router.get("/votes", summary="Votes in your community (newest first)")
async def list_votes(
    uow: UoW,
    who: Caller,
    runtime: Runtime,
    page: PageQuery,
    community: PlaceCode | None = None,
    status: Annotated[str | None, Query(pattern="^(scheduled|open|closed)$")] = None,
) -> Page[VotePublic]:
    found = await votes.list_votes(uow, who, page, community, status)
    return found.with_items(await votes.views(uow, who, found.items, runtime.settings.secret))


@router.get("/votes/{vote_id}")
async def get_vote(vote_id: UUID, uow: UoW, who: Caller, runtime: Runtime) -> VotePublic:
    return await votes.view(uow, who, await votes.visible_vote(uow, who, vote_id), runtime.settings.secret)


@router.post("/votes/{vote_id}/ballots", status_code=201, summary="Cast your (household's) one vote")
async def cast(vote_id: UUID, body: BallotCreate, uow: UoW, who: Caller, runtime: Runtime) -> BallotRecorded:
    vote = await votes.visible_vote(uow, who, vote_id)
    votes.cast(uow, who, vote, body.option, runtime.settings.secret)
    # Read before the commit: after a rollback the vote's attributes are expired.
    per_household, ident = vote.eligibility == Eligibility.household, vote.id
    try:
        await uow.commit()
    except sa.exc.IntegrityError:
        await uow.rollback()
        # The unique key decided it (also between two concurrent requests).
        raise conflict(
            "already_voted", "Your household has already voted." if per_household else "You have already voted."
        ) from None
    return BallotRecorded(vote_id=ident, recorded=True, option=body.option)


@router.post("/votes/{vote_id}/close", summary="Staff: close a vote early")
async def close_vote(vote_id: UUID, uow: UoW, who: Staff, runtime: Runtime) -> VotePublic:
    vote = await votes.visible_vote(uow, who, vote_id, for_update=True)
    await votes.close_early(uow, who, vote)
    await uow.commit()
    return await votes.view(uow, who, vote, runtime.settings.secret)
