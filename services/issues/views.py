"""HTTP API of the issues service (mounted at ``/issues``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from minsheng.platform.service import UoW
from services.issues import service
from services.issues.models import (
    Channel,
    IssueCreate,
    IssueDetail,
    IssuePublic,
    IssueStatus,
    Rejection,
    StaffNote,
    TimelineEntryPublic,
)

router = APIRouter()
Caller = Annotated[Principal, Depends(current_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


async def _detail(uow: UoW, issue_id: UUID, who: Principal) -> IssueDetail:
    issue = await service.get_issue(uow, who, issue_id)
    entries = await service.timeline(uow, issue.id)
    return IssueDetail.model_validate({
        **IssuePublic.model_validate(issue, from_attributes=True).model_dump(),
        "timeline": [TimelineEntryPublic.model_validate(e, from_attributes=True) for e in entries],
    })


@router.post("/issues", status_code=201, response_model=IssuePublic, tags=["issues"],
             summary="Report a problem")
async def report_issue(body: IssueCreate, uow: UoW, who: Caller,
                       idempotency_key: str | None = IdempotencyKey) -> JSONResponse:
    channel = Channel.staff if who.has(Role.staff) else Channel.grid_worker if who.has(Role.grid_worker) \
        else Channel.resident

    async def action() -> tuple[int, IssuePublic]:
        issue = await service.report_issue(uow, who, body, channel)
        return 201, IssuePublic.model_validate(issue, from_attributes=True)

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:report-issue", body=body, action=action)


@router.get("/issues", response_model=Page[IssuePublic], tags=["issues"],
            summary="Issues you may see: staff their scope, residents their own and public ones")
async def list_issues(uow: UoW, who: Caller, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None,
                      status: IssueStatus | None = None, community: str | None = None,
                      mine: bool = False) -> Page[IssuePublic]:
    page = await service.list_issues(uow, who, limit=limit, cursor=cursor, status=status, community=community,
                                     mine=mine)
    return Page[IssuePublic](items=[IssuePublic.model_validate(i, from_attributes=True) for i in page.items],
                             next_cursor=page.next_cursor)


@router.get("/issues/{issue_id}", response_model=IssueDetail, tags=["issues"])
async def get_issue(issue_id: UUID, uow: UoW, who: Caller) -> IssueDetail:
    return await _detail(uow, issue_id, who)


@router.post("/issues/{issue_id}/verify", response_model=IssueDetail, tags=["workflow"],
             summary="Staff confirmed the problem on site")
async def verify(issue_id: UUID, uow: UoW, who: Staff, body: StaffNote | None = None) -> IssueDetail:
    issue = await service.get_issue(uow, who, issue_id, for_update=True)
    await service.verify(uow, who, issue, body.note if body else None)
    await uow.commit()
    return await _detail(uow, issue_id, who)


@router.post("/issues/{issue_id}/resolve", response_model=IssueDetail, tags=["workflow"])
async def resolve(issue_id: UUID, uow: UoW, who: Staff, body: StaffNote | None = None) -> IssueDetail:
    issue = await service.get_issue(uow, who, issue_id, for_update=True)
    await service.resolve(uow, who, issue, body.note if body else None)
    await uow.commit()
    return await _detail(uow, issue_id, who)


@router.post("/issues/{issue_id}/reject", response_model=IssueDetail, tags=["workflow"])
async def reject(issue_id: UUID, body: Rejection, uow: UoW, who: Staff) -> IssueDetail:
    issue = await service.get_issue(uow, who, issue_id, for_update=True)
    await service.reject(uow, who, issue, body)
    await uow.commit()
    return await _detail(uow, issue_id, who)
