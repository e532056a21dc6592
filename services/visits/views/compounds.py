"""Routes under ``/visits/compounds``: residential compounds (小区)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from minsheng.platform.inputs import text
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import places
from services.visits.models import CodeFilter, CompoundCreate, CompoundPublic
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["places"])


@router.post("/compounds", status_code=201, dependencies=[STAFF], summary="Register a residential compound (小区)")
async def create_compound(body: CompoundCreate, uow: UoW, who: Who) -> CompoundPublic:
    compound = await places.create_compound(uow, who, body)
    await commit(uow)
    return CompoundPublic.model_validate(compound, from_attributes=True)


@router.get("/compounds", dependencies=[FIELD])
async def list_compounds(uow: UoW, who: Who, *, community: CodeFilter = None, page: PageQuery) -> Page[CompoundPublic]:
    compounds = await places.list_compounds(uow, who, community=community, page=page)
    return compounds.map(from_row(CompoundPublic))


@router.get("/compounds/{code}", dependencies=[FIELD])
async def get_compound(code: Annotated[str, text(40)], uow: UoW, who: Who) -> CompoundPublic:
    return CompoundPublic.model_validate(await places.get_compound(uow, who, code), from_attributes=True)
