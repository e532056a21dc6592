"""Routes under ``/visits/visits``: recording visits (retry-safe) and reading them."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.visits import ledger, visiting
from services.visits.models import VisitCreate, VisitFilters, VisitPublic, VisitRecorded
from services.visits.views.deps import FIELD, Who

router = APIRouter(tags=["visits"], dependencies=[FIELD])


@router.post(
    "/visits",
    status_code=201,
    response_model=VisitRecorded,
    summary="Record a visit (or an attempt) with any needs heard at the door; retry-safe",
)
async def record_visit(
    body: VisitCreate, uow: UoW, who: Who, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    async def action() -> tuple[int, VisitRecorded]:
        visit, needs, done = await visiting.record_visit(uow, who, body)
        await uow.session.flush()
        return 201, VisitRecorded(
            **VisitPublic.model_validate(visit, from_attributes=True).model_dump(),
            needs=[ledger.need_public(n) for n in needs],
            tasks_completed=done,
        )

    return await idempotent(uow, key=idempotency_key, scope=f"{who.sub}:record-visit", body=body, action=action)


@router.get("/visits")
async def list_visits(
    uow: UoW,
    who: Who,
    filters: Annotated[VisitFilters, Query()],
    page: PageQuery,
) -> Page[VisitPublic]:
    visits = await visiting.list_visits(uow, who, filters=filters, page=page)
    return visits.map(from_row(VisitPublic))


@router.get("/visits/{visit_id}")
async def get_visit(visit_id: UUID, uow: UoW, who: Who) -> VisitRecorded:
    visit = await visiting.get_visit(uow, who, visit_id)
    needs = (await visiting.needs_of_visits(uow, [visit.id]))[visit.id]
    return VisitRecorded(
        **VisitPublic.model_validate(visit, from_attributes=True).model_dump(),
        needs=[ledger.need_public(n) for n in needs],
    )
