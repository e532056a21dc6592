"""Routes under ``/visits/communities``: communities (社区) and their counts."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.visits import places
from services.visits.models import CommunityCreate, CommunityPublic
from services.visits.views.deps import ADMIN, FIELD, Who, commit

router = APIRouter(tags=["places"])


@router.post("/communities", status_code=201, dependencies=[ADMIN], summary="Register a community (社区); admin")
async def create_community(body: CommunityCreate, uow: UoW) -> CommunityPublic:
    community = await places.create_community(uow, body)
    await commit(uow)
    return CommunityPublic(id=community.id, code=community.code, name=community.name)


@router.get("/communities", dependencies=[FIELD], summary="Communities you cover, with compound and household counts")
async def list_communities(uow: UoW, who: Who, page: PageQuery) -> Page[CommunityPublic]:
    return await places.list_communities(uow, who, page=page)
