"""``/escalations``: overdue issues escalated to the sub-district."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.inputs import Cursor
from minsheng.platform.pagination import DEFAULT_LIMIT, Page
from minsheng.platform.service import UoW
from services.issues import queries
from services.issues.models import IssuePublic
from services.issues.views.deps import Cipher, Limit, Staff

router = APIRouter()


@router.get(
    "/escalations", tags=["workflow"], summary="Overdue issues escalated to the sub-district, most escalated first"
)
async def list_escalations(
    uow: UoW, who: Staff, cipher: Cipher, limit: Limit = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Page[IssuePublic]:
    page = await queries.escalations(uow, who, limit=limit, cursor=cursor)
    return Page[IssuePublic](
        items=[queries.public_view(i, who, cipher) for i in page.items], next_cursor=page.next_cursor
    )
