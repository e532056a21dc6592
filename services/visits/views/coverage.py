"""Routes under ``/visits/coverage``: share of households visited, needs open and closed."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from minsheng.platform.errors import invalid
from minsheng.platform.inputs import Day
from minsheng.platform.service import UoW
from services.visits import coverage as coverage_figures
from services.visits.config import quarter_start, today
from services.visits.models import CodeFilter, Coverage
from services.visits.views.deps import FIELD, Who

router = APIRouter()


@router.get(
    "/coverage",
    tags=["coverage"],
    dependencies=[FIELD],
    summary="Share of households visited, overdue visits, needs open/closed, median days to close",
)
async def coverage(
    uow: UoW,
    who: Who,
    by: Literal["community", "compound", "worker"] = "community",
    since: Day | None = None,
    until: Day | None = None,
    community: CodeFilter = None,
) -> Coverage:
    until = until or today()
    since = since or quarter_start(until)
    if since > until:
        raise invalid(
            "invalid_period",
            "The period ends before it starts",
            "Give since <= until.",
            field="since",
            message="after until",
        )
    return await coverage_figures.coverage(uow, who, by=by, since=since, until=until, community=community)
