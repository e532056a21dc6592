"""``/open311-keys``: staff issue, list and revoke the Open311 API keys (only a hash of each key is stored)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.issues import open311
from services.issues.models import ApiKeyCreate, ApiKeyIssued, ApiKeyPublic
from services.issues.views.deps import Manager

router = APIRouter(tags=["open311"])


@router.post(
    "/open311-keys", status_code=201, summary="Staff: issue an Open311 API key (shown once; only its hash is stored)"
)
async def create_key(body: ApiKeyCreate, uow: UoW, who: Manager) -> ApiKeyIssued:
    row, key = open311.issue_key(uow, body.name, who)
    await uow.commit()
    return ApiKeyIssued.model_validate(
        {**ApiKeyPublic.model_validate(row, from_attributes=True).model_dump(), "api_key": key}
    )


@router.get("/open311-keys", summary="Staff: Open311 API keys")
async def list_keys(uow: UoW, who: Manager, page: PageQuery) -> Page[ApiKeyPublic]:
    return (await open311.list_keys(uow, page)).map(from_row(ApiKeyPublic))


@router.delete("/open311-keys/{key_id}", summary="Staff: revoke a key")
async def revoke_key(key_id: UUID, uow: UoW, who: Manager) -> ApiKeyPublic:
    row = await open311.revoke_key(uow, key_id)
    await uow.commit()
    return ApiKeyPublic.model_validate(row, from_attributes=True)
