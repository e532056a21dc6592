"""Routes under ``/visits/due``: what is due to be visited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from minsheng.platform.pagination import PageQuery
from minsheng.platform.service import UoW
from services.visits import places, tasks
from services.visits.config import today
from services.visits.due import due_list, viewer_for_worker
from services.visits.models import DueFilters, DueList
from services.visits.views.deps import FIELD, Who

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
    filters: Annotated[DueFilters, Query()],
    page: PageQuery,
) -> DueList:
    viewer = await viewer_for_worker(uow, who, filters.worker_id) if filters.worker_id else who
    open_tasks, households = await due_list(uow, viewer, filters=filters, page=page)
    day = today()
    return DueList(
        tasks=[tasks.task_public(t) for t in open_tasks],
        households=[places.household_public(h, day) for h in households.items],
        next_cursor=households.next_cursor,
    )
