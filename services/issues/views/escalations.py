"""``/escalations``: overdue issues escalated to the sub-district."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher
from minsheng.platform.service import UoW
from services.issues import queries
from services.issues.models import IssuePublic
from services.issues.views.deps import Staff

router = APIRouter()


@router.get(
    "/escalations", tags=["workflow"], summary="Overdue issues escalated to the sub-district, most escalated first"
)
async def list_escalations(uow: UoW, who: Staff, cipher: Cipher, page: PageQuery) -> Page[IssuePublic]:
    escalated = await queries.escalations(uow, who, page)
    return escalated.map(lambda issue: queries.public_view(issue, who, cipher))
