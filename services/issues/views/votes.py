"""``/votes/…``: votes on community matters (事项投票) — staff open and close them, residents cast one ballot."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minsheng.platform.errors import conflict
from minsheng.platform.idempotency import IdempotencyKey, idempotent
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


@router.post(
    "/votes/{vote_id}/ballots",
    status_code=201,
    response_model=BallotRecorded,
    summary="Cast your (household's) one vote; a resend with the same Idempotency-Key replays the answer",
)
async def cast(
    vote_id: UUID,
    body: BallotCreate,
    uow: UoW,
    who: Caller,
    runtime: Runtime,
    idempotency_key: str | None = IdempotencyKey,
) -> JSONResponse:
    vote = await votes.visible_vote(uow, who, vote_id)
    per_household = vote.eligibility == Eligibility.household

    async def action() -> tuple[int, BallotRecorded]:
        votes.cast(uow, who, vote, body.option, runtime.settings.secret)
        return 201, BallotRecorded(vote_id=vote_id, recorded=True, option=body.option)

    try:
        return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:ballot:{vote_id}", body=body, action=action)
    except sa.exc.IntegrityError:
        # The unique key decided it (also between two concurrent requests), for a ballot sent without the key
        # of the first one.
        raise conflict(
            "already_voted", "Your household has already voted." if per_household else "You have already voted."
        ) from None


@router.post("/votes/{vote_id}/close", summary="Staff: close a vote early")
async def close_vote(vote_id: UUID, uow: UoW, who: Staff, runtime: Runtime) -> VotePublic:
    vote = await votes.visible_vote(uow, who, vote_id, for_update=True)
    await votes.close_early(uow, who, vote)
    await uow.commit()
    return await votes.view(uow, who, vote, runtime.settings.secret)
