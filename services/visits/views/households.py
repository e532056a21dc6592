"""Routes under ``/visits/households``: households (a door), and a household's happiness bill."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from minsheng.platform.inputs import Day
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.service import UoW
from services.visits import bill, places
from services.visits.access import Viewer
from services.visits.config import today
from services.visits.models import Bill, HouseholdCreate, HouseholdFilters, HouseholdPublic, HouseholdUpdate
from services.visits.views.deps import FIELD, Who, commit

router = APIRouter()


@router.post(
    "/households",
    status_code=201,
    tags=["households"],
    dependencies=[FIELD],
    summary="Register a household (a door) in a building",
)
async def create_household(body: HouseholdCreate, uow: UoW, who: Who) -> HouseholdPublic:
    household = await places.create_household(uow, who, body)
    await commit(uow)
    return places.household_public(household)


@router.get(
    "/households",
    tags=["households"],
    dependencies=[FIELD],
    summary="Households you cover (grid workers: your assignments; staff: your communities)",
)
async def list_households(
    uow: UoW,
    who: Who,
    filters: Annotated[HouseholdFilters, Query()],
    page: PageQuery,
) -> Page[HouseholdPublic]:
    households = await places.list_households(uow, who, filters=filters, page=page)
    day = today()
    return households.map(lambda h: places.household_public(h, day))


@router.get("/households/{household_id}", tags=["households"])
async def get_household(household_id: UUID, uow: UoW, who: Who) -> HouseholdPublic:
    return places.household_public(await places.get_household(uow, who, household_id))


@router.patch("/households/{household_id}", tags=["households"], dependencies=[FIELD])
async def update_household(household_id: UUID, body: HouseholdUpdate, uow: UoW, who: Who) -> HouseholdPublic:
    household = await places.get_household(uow, who, household_id, for_update=True)
    await places.update_household(uow, who, household, body)
    await commit(uow)
    return places.household_public(household)


async def _household_bill(uow: UoW, who: Viewer, household_id: UUID, since: Day | None, until: Day | None) -> Bill:
    household = await places.get_household(uow, who, household_id)
    return await bill.bill(uow, household, since=since, until=until)


@router.get(
    "/households/{household_id}/bill",
    tags=["happiness bill"],
    summary="What the household raised and what was done, when and by whom",
)
async def household_bill(
    household_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> Bill:
    return await _household_bill(uow, who, household_id, since, until)


@router.get(
    "/households/{household_id}/bill.html",
    response_class=HTMLResponse,
    tags=["happiness bill"],
    summary="The same, as a printable page",
)
async def household_bill_html(
    household_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> HTMLResponse:
    return HTMLResponse(bill.bill_html(await _household_bill(uow, who, household_id, since, until)))
