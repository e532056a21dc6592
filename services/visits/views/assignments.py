"""Routes under ``/visits/assignments``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.service import UoW
from services.visits import workers
from services.visits.models import AssignmentPublic
from services.visits.views.deps import STAFF, Who, commit

router = APIRouter()


@router.post("/assignments/{assignment_id}/end", tags=["grid"], dependencies=[STAFF])
async def end_assignment(assignment_id: UUID, uow: UoW, who: Who) -> AssignmentPublic:
    assignment = await workers.end_assignment(uow, who, assignment_id)
    await commit(uow)
    return AssignmentPublic.model_validate(assignment, from_attributes=True)
