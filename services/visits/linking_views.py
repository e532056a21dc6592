"""HTTP routes for linking a resident's app account by its WeChat-verified phone and the grid worker's
confirmation (``services/visits/linking.py``); the door-code routes live with the residents' app in views."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends

from minsheng.platform.auth import Role, require
from minsheng.platform.pagination import DEFAULT_LIMIT, Page
from services.visits import linking
from services.visits.models import (
    LinkDecision,
    LinkRequest,
    LinkRequestForStaff,
    LinkRequestPublic,
    LinkRequestStatus,
    Resident,
)
from services.visits.views import FIELD, Cipher, Cursor, Limit, UoW, Who, _commit

router = APIRouter()
RESIDENT = Depends(require(Role.resident))


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


@router.post(
    "/me/link-requests",
    response_model=list[LinkRequestPublic],
    tags=["residents' app"],
    dependencies=[RESIDENT],
    summary="Ask to be linked to the resident whose phone is your WeChat-verified phone (your grid worker confirms)",
)
async def request_link(uow: UoW, who: Who, cipher: Cipher) -> list[LinkRequestPublic]:
    requests = await linking.request_by_phone(uow, who, cipher)
    await _commit(uow)
    return [LinkRequestPublic.model_validate(r, from_attributes=True) for r in requests]


@router.get(
    "/me/link-requests",
    response_model=list[LinkRequestPublic],
    tags=["residents' app"],
    dependencies=[RESIDENT],
    summary="Your link requests and what became of them",
)
async def my_link_requests(uow: UoW, who: Who) -> list[LinkRequestPublic]:
    return [LinkRequestPublic.model_validate(r, from_attributes=True) for r in await linking.my_requests(uow, who)]


@router.get(
    "/link-requests",
    response_model=Page[LinkRequestForStaff],
    tags=["residents"],
    dependencies=[FIELD],
    summary="Link requests of the households you look after, to confirm at the door or reject",
)
async def link_requests(
    uow: UoW,
    who: Who,
    status: LinkRequestStatus | None = LinkRequestStatus.pending,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[LinkRequestForStaff]:
    page = await linking.requests_to_decide(uow, who, status=status, limit=limit, cursor=cursor)
    return Page[LinkRequestForStaff](items=[_for_staff(r, p) for r, p in page.items], next_cursor=page.next_cursor)


@router.post(
    "/link-requests/{request_id}/confirm",
    response_model=LinkRequestForStaff,
    tags=["residents"],
    dependencies=[FIELD],
    summary="Confirm that this account is the resident's (you checked at the door): the account is linked",
)
async def confirm_link(
    request_id: UUID, uow: UoW, who: Who, cipher: Cipher, body: LinkDecision | None = None
) -> LinkRequestForStaff:
    request, resident = await linking.decide(
        uow, who, cipher, request_id, confirm=True, reason=body.reason if body else None
    )
    await _commit(uow)
    return _for_staff(request, resident)


@router.post(
    "/link-requests/{request_id}/reject",
    response_model=LinkRequestForStaff,
    tags=["residents"],
    dependencies=[FIELD],
    summary="Reject a link request (not this resident's account)",
)
async def reject_link(
    request_id: UUID, uow: UoW, who: Who, cipher: Cipher, body: LinkDecision | None = None
) -> LinkRequestForStaff:
    request, resident = await linking.decide(
        uow, who, cipher, request_id, confirm=False, reason=body.reason if body else None
    )
    await _commit(uow)
    return _for_staff(request, resident)
