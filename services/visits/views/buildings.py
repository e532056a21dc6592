"""Routes under ``/visits/buildings``."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import places
from services.visits.models import BuildingCreate, BuildingPublic, CodeFilter
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter(tags=["places"])


@router.post("/buildings", status_code=201, dependencies=[STAFF])
async def create_building(body: BuildingCreate, uow: UoW, who: Who) -> BuildingPublic:
    building = await places.create_building(uow, who, body)
    await commit(uow)
    return BuildingPublic.model_validate(building, from_attributes=True)


@router.get("/buildings", dependencies=[FIELD])
async def list_buildings(uow: UoW, who: Who, *, compound: CodeFilter = None, page: PageQuery) -> Page[BuildingPublic]:
    buildings = await places.list_buildings(uow, who, compound=compound, page=page)
    return buildings.map(from_row(BuildingPublic))
