"""Routes under ``/visits/link-requests``: grid workers confirm or reject an app account's link request
(``services/visits/linking.py``)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.routes import Cipher
from minsheng.platform.service import UoW
from services.visits import linking
from services.visits.access import Viewer
from services.visits.models import LinkDecision, LinkRequest, LinkRequestForStaff, LinkRequestStatus, Resident
from services.visits.views.deps import FIELD, Who, commit

router = APIRouter(tags=["residents"], dependencies=[FIELD])


def _for_staff(request: LinkRequest, resident: Resident) -> LinkRequestForStaff:
    return LinkRequestForStaff(
        id=request.id,
        status=LinkRequestStatus(request.status),
        created_at=request.created_at,
        decided_at=request.decided_at,
        resident_id=resident.id,
        resident_name=resident.name,
        account_subject=request.account_subject,
        compound=request.compound,
    )


@router.get(
    "/link-requests", summary="Link requests of the households you look after, to confirm at the door or reject"
)
async def link_requests(
    uow: UoW,
    who: Who,
    *,
    status: LinkRequestStatus | None = LinkRequestStatus.pending,
    page: PageQuery,
) -> Page[LinkRequestForStaff]:
    requests = await linking.requests_to_decide(uow, who, status=status, page=page)
    return requests.map(lambda row: _for_staff(*row))


@router.post(
    "/link-requests/{request_id}/confirm",
    summary="Confirm that this account is the resident's (you checked at the door): the account is linked",
)
async def confirm_link(
    request_id: UUID, uow: UoW, who: Who, cipher: Cipher, body: LinkDecision | None = None
) -> LinkRequestForStaff:
    return await _decide(uow, who, cipher, request_id, body, confirm=True)


@router.post("/link-requests/{request_id}/reject", summary="Reject a link request (not this resident's account)")
async def reject_link(
    request_id: UUID, uow: UoW, who: Who, cipher: Cipher, body: LinkDecision | None = None
) -> LinkRequestForStaff:
    return await _decide(uow, who, cipher, request_id, body, confirm=False)


async def _decide(
    uow: UoW, who: Viewer, cipher: FieldCipher, request_id: UUID, body: LinkDecision | None, *, confirm: bool
) -> LinkRequestForStaff:
    request, resident = await linking.decide(
        uow, who, cipher, request_id, confirm=confirm, reason=body.reason if body else None
    )
    await commit(uow)
    return _for_staff(request, resident)
