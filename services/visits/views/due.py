"""Routes under ``/visits/due``: what is due to be visited."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from minsheng.platform.inputs import Cursor
from minsheng.platform.pagination import DEFAULT_LIMIT
from minsheng.platform.service import UoW
from services.visits import places, visiting
from services.visits.config import today
from services.visits.models import DueList
from services.visits.views.deps import FIELD, Code, Limit, Who

router = APIRouter()


@router.get(
    "/due",
    tags=["due"],
    dependencies=[FIELD],
    summary="Open visit tasks and the households due (overdue first); workers: theirs",
)
async def due(
    uow: UoW,
    who: Who,
    worker_id: UUID | None = None,
    within_days: Annotated[int, Query(ge=0, le=90)] = 0,
    overdue_only: bool = False,
    compound: Code = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor | None = None,
) -> DueList:
    viewer = await visiting.viewer_for_worker(uow, who, worker_id) if worker_id else who
    tasks, page = await visiting.due_list(
        uow, viewer, limit=limit, cursor=cursor, within_days=within_days, overdue_only=overdue_only, compound=compound
    )
    day = today()
    return DueList(
        tasks=[visiting.task_public(t) for t in tasks],
        households=[places.household_public(h, day) for h in page.items],
        next_cursor=page.next_cursor,
    )
