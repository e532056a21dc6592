"""Routes under ``/canteen/diners``: registering elders, their personal data, family and family codes, the month's
statement."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from minsheng.platform.inputs import text
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import UoW, WriteUoW
from services.canteen import diners, linking, reports
from services.canteen.models import (
    DinerCreate,
    DinerFilters,
    DinerLookup,
    DinerPublic,
    DinerSensitive,
    DinerUpdate,
    FamilyCodeCreate,
    FamilyCodePublic,
    FamilyMemberCreate,
    FamilyMemberPublic,
    PiiAccessPublic,
)
from services.canteen.views.deps import Caller, Carer, Month, commit

router = APIRouter(tags=["diners"])


@router.post(
    "/diners",
    status_code=201,
    summary="Register an elder (staff of the canteen or community, or the area's grid worker)",
)
async def register_diner(body: DinerCreate, uow: UoW, who: Carer, cipher: Cipher) -> DinerPublic:
    diner = await diners.register_diner(uow, who, body, cipher)
    await commit(uow)
    return diners.diner_public(diner)


@router.get("/diners", summary="Diners in your scope (staff: your canteen/community; grid workers: your area)")
async def list_diners(
    uow: UoW, who: Carer, filters: Annotated[DinerFilters, Query()], page: PageQuery
) -> Page[DinerPublic]:
    found = await diners.list_diners(uow, who, filters, page)
    family = await diners.family_of(uow, [d.id for d in found.items])
    return found.map(lambda d: diners.diner_public(d, family[d.id]))


@router.post(
    "/diners/lookup",
    summary="Find a diner by ID number (matched by its keyed hash; the number is never stored in clear)",
)
async def lookup_diner(body: DinerLookup, uow: UoW, who: Carer, cipher: Cipher) -> DinerPublic:
    diner = await diners.lookup_diner(uow, who, body.id_number, cipher)
    return diners.diner_public(diner, (await diners.family_of(uow, [diner.id]))[diner.id])


@router.get(
    "/diners/{diner_id}/statement/{month}",
    summary="The elder's month: meals, price, subsidy by funder, what they (or family) paid",
)
async def diner_statement(diner_id: UUID, month: Month, uow: UoW, who: Caller) -> reports.DinerStatement:
    diner, *_ = await diners.load_diner(uow, who, diner_id)
    return await reports.diner_statement(uow, diner, month)


@router.get("/diners/{diner_id}", summary="One diner (the elder, family, or staff in scope); personal data masked")
async def get_diner(diner_id: UUID, uow: UoW, who: Caller) -> DinerPublic:
    diner, _, family, _, _ = await diners.load_diner(uow, who, diner_id)
    return diners.diner_public(diner, family)


@router.patch(
    "/diners/{diner_id}", summary="Update a diner (the elder and family may change tastes, address, away dates)"
)
async def update_diner(diner_id: UUID, body: DinerUpdate, uow: UoW, who: Caller, cipher: Cipher) -> DinerPublic:
    diner, family = await diners.update_diner(uow, who, diner_id, body, cipher)
    await commit(uow)
    return diners.diner_public(diner, family)


@router.get(
    "/diners/{diner_id}/sensitive",
    summary="Unmasked phone, ID number and health notes (staff with `pii:reveal`; every read is logged)",
)
async def read_sensitive(
    diner_id: UUID, uow: WriteUoW, who: Carer, cipher: Cipher, purpose: Annotated[str, text(200, min_length=2)]
) -> DinerSensitive:
    result = await diners.read_sensitive(uow, who, diner_id, purpose, cipher)
    await commit(uow)
    return result


@router.get("/diners/{diner_id}/access-log", summary="Who read this diner's unmasked data, when and why")
async def access_log(diner_id: UUID, uow: UoW, who: Carer, page: PageQuery) -> Page[PiiAccessPublic]:
    return (await diners.access_log(uow, who, diner_id, page)).map(from_row(PiiAccessPublic))


@router.post(
    "/diners/{diner_id}/family", status_code=201, summary="Link a family member who may order and pay for the elder"
)
async def add_family(
    diner_id: UUID, body: FamilyMemberCreate, uow: UoW, who: Caller, cipher: Cipher
) -> FamilyMemberPublic:
    member = await diners.add_family(uow, who, diner_id, body, cipher)
    await commit(uow)
    return FamilyMemberPublic.model_validate(member, from_attributes=True)


@router.delete(
    "/diners/{diner_id}/family/{member_id}",
    status_code=204,
    summary="Unlink a family member (the elder, staff, or the member themself)",
)
async def remove_family(diner_id: UUID, member_id: UUID, uow: UoW, who: Caller) -> Response:
    await diners.remove_family(uow, who, diner_id, member_id)
    await commit(uow)
    return Response(status_code=204)


@router.post(
    "/diners/{diner_id}/family-codes",
    status_code=201,
    summary="A one-time code for a relative to link their app account to this diner (staff, grid worker)",
)
async def issue_family_code(
    diner_id: UUID, body: FamilyCodeCreate, uow: UoW, who: Carer, cipher: Cipher
) -> FamilyCodePublic:
    code, row = await linking.issue(uow, who, diner_id, body, cipher)
    await commit(uow)
    return FamilyCodePublic(diner_id=row.diner_id, code=code, expires_at=row.expires_at)
