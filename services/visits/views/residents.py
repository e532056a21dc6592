"""Routes under ``/visits/residents``: residents, their status, personal data in clear (audited), door codes and a
resident's happiness bill."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from minsheng.platform.access import ensure_visible
from minsheng.platform.inputs import Day
from minsheng.platform.observability import current_request_id
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher
from minsheng.platform.service import Runtime, UoW
from services.visits import bill, linking, places, residents
from services.visits.access import Viewer, writes
from services.visits.config import today
from services.visits.models import (
    Bill,
    DoorCodePublic,
    IdNumberLookup,
    ResidentCreate,
    ResidentFilters,
    ResidentPublic,
    ResidentUpdate,
    RevealedResident,
    RevealRequest,
    StatusChange,
)
from services.visits.views.deps import FIELD, STAFF, Who, commit

router = APIRouter()


@router.post(
    "/residents",
    status_code=201,
    tags=["residents"],
    dependencies=[FIELD],
    summary="Register a resident (ID number encrypted, phone and ID answered masked)",
)
async def create_resident(body: ResidentCreate, uow: UoW, who: Who, cipher: Cipher) -> ResidentPublic:
    resident = await residents.create_resident(uow, who, cipher, body)
    await commit(uow)
    return residents.resident_public(resident)


@router.get(
    "/residents",
    tags=["residents"],
    dependencies=[FIELD],
    summary="Residents you cover; filter by care tag, age, mobility, status",
)
async def list_residents(
    uow: UoW,
    who: Who,
    filters: Annotated[ResidentFilters, Query()],
    page: PageQuery,
) -> Page[ResidentPublic]:
    found = await residents.list_residents(uow, who, filters=filters, page=page)
    day = today()
    return found.map(lambda r: residents.resident_public(r, day))


@router.post(
    "/residents/lookup",
    tags=["residents"],
    dependencies=[FIELD],
    summary="Find a resident by ID number (sent in the body, matched by keyed hash)",
)
async def lookup_resident(body: IdNumberLookup, uow: UoW, who: Who, cipher: Cipher) -> ResidentPublic:
    return residents.resident_public(await residents.lookup_by_id_number(uow, who, cipher, body.id_number))


@router.get("/residents/{resident_id}", tags=["residents"])
async def get_resident(resident_id: UUID, uow: UoW, who: Who) -> ResidentPublic:
    return residents.resident_public(await residents.get_resident(uow, who, resident_id))


@router.patch("/residents/{resident_id}", tags=["residents"], dependencies=[FIELD])
async def update_resident(
    resident_id: UUID, body: ResidentUpdate, uow: UoW, who: Who, cipher: Cipher
) -> ResidentPublic:
    resident = await residents.get_resident(uow, who, resident_id, for_update=True)
    await residents.update_resident(uow, who, cipher, resident, body)
    await commit(uow)
    return residents.resident_public(resident)


@router.post(
    "/residents/{resident_id}/status",
    tags=["residents"],
    dependencies=[STAFF],
    summary="Moved away / deceased / back (emits ResidentStatusChanged)",
)
async def change_status(resident_id: UUID, body: StatusChange, uow: UoW, who: Who) -> ResidentPublic:
    resident = await residents.get_resident(uow, who, resident_id, for_update=True)
    await residents.change_status(uow, who, resident, body)
    await commit(uow)
    return residents.resident_public(resident)


@router.post(
    "/residents/{resident_id}/reveal",
    tags=["personal data"],
    summary="Phone, ID number or health notes in clear; needs `pii:reveal`, always audited",
)
async def reveal(resident_id: UUID, body: RevealRequest, uow: UoW, who: Who, cipher: Cipher) -> RevealedResident:
    resident = await residents.get_resident(uow, who, resident_id)
    out = await residents.reveal(uow, who, cipher, resident, body, current_request_id.get())
    await commit(uow)
    return out


@router.post(
    "/residents/{resident_id}/door-code",
    tags=["residents"],
    dependencies=[FIELD],
    summary="A door code for this resident to link their app account (show it as a QR code)",
)
async def door_code(resident_id: UUID, uow: UoW, who: Who, runtime: Runtime) -> DoorCodePublic:
    resident = await residents.get_resident(uow, who, resident_id)
    ensure_visible(writes(who, resident), "resident", resident_id)
    code, expires_at = linking.issue(runtime.settings, resident.id)
    return DoorCodePublic(resident_id=resident.id, code=code, expires_at=expires_at)


async def _resident_bill(uow: UoW, who: Viewer, resident_id: UUID, since: Day | None, until: Day | None) -> Bill:
    resident = await residents.get_resident(uow, who, resident_id)
    household = await places.get_household(uow, who, resident.household_id)
    return await bill.bill(uow, household, resident=resident, since=since, until=until)


@router.get("/residents/{resident_id}/bill", tags=["happiness bill"])
async def resident_bill(
    resident_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> Bill:
    return await _resident_bill(uow, who, resident_id, since, until)


@router.get("/residents/{resident_id}/bill.html", response_class=HTMLResponse, tags=["happiness bill"])
async def resident_bill_html(
    resident_id: UUID, uow: UoW, who: Who, since: Day | None = None, until: Day | None = None
) -> HTMLResponse:
    return HTMLResponse(bill.bill_html(await _resident_bill(uow, who, resident_id, since, until)))
