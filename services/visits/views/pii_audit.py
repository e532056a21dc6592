"""Routes under ``/visits/pii-audit``: who revealed whose personal data, when and why."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.inputs import text
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import residents
from services.visits.models import PiiAuditPublic
from services.visits.views.deps import Who

router = APIRouter()


@router.get(
    "/pii-audit", tags=["personal data"], summary="Who revealed whose personal data, when and why; needs `pii:audit`"
)
async def list_audit(
    uow: UoW,
    who: Who,
    *,
    resident_id: UUID | None = None,
    actor: Annotated[str | None, text(200)] = None,
    page: PageQuery,
) -> Page[PiiAuditPublic]:
    entries = await residents.list_audit(uow, who, page=page, resident_id=resident_id, actor=actor)
    return entries.map(from_row(PiiAuditPublic))
