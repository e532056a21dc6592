"""Routes under ``/visits/pii-audit``: who revealed whose personal data, when and why."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.inputs import Cursor
from minsheng.platform.pagination import DEFAULT_LIMIT, Page
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import residents
from services.visits.models import PiiAuditPublic
from services.visits.views.deps import Limit, Who

router = APIRouter()


@router.get(
    "/pii-audit", tags=["personal data"], summary="Who revealed whose personal data, when and why; needs `pii:audit`"
)
async def list_audit(
    uow: UoW,
    who: Who,
    resident_id: UUID | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor | None = None,
) -> Page[PiiAuditPublic]:
    page = await residents.list_audit(uow, who, limit=limit, cursor=cursor, resident_id=resident_id, actor=actor)
    return page.map(from_row(PiiAuditPublic))
