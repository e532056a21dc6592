"""``/figures`` and ``/figures.csv``: the public figures, and their CSV for staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from minsheng.platform import csvfile
from minsheng.platform.service import UoW
from services.issues import config
from services.issues.figures import Dimension, FigureRow, Figures, cached, check_period
from services.issues.models import CatalogueCode, PlaceCode
from services.issues.views.deps import FromQ, Staff, ToQ

router = APIRouter(tags=["figures"])
GroupQ = Annotated[list[Dimension] | None, Query(description="Repeatable: community, category, month")]


@router.get("/figures", summary="Public figures: handled, completion rate, response times")
async def figures(
    uow: UoW,
    response: Response,
    start: FromQ = None,
    end: ToQ = None,
    community: PlaceCode | None = None,
    category: CatalogueCode | None = None,
    group_by: GroupQ = None,
) -> Figures:
    check_period(start, end)
    response.headers["Cache-Control"] = f"public, max-age={int(config.get().figures_cache_seconds)}"
    return await cached(uow, start=start, end=end, community=community, category=category, group_by=group_by)


@router.get(
    "/figures.csv",
    summary="Staff: the figures as CSV (UTF-8 with BOM, opens in Excel/WPS)",
    response_class=StreamingResponse,
)
async def figures_csv(
    uow: UoW,
    who: Staff,
    start: FromQ = None,
    end: ToQ = None,
    community: PlaceCode | None = None,
    category: CatalogueCode | None = None,
    group_by: GroupQ = None,
) -> StreamingResponse:
    check_period(start, end)
    result = await cached(uow, start=start, end=end, community=community, category=category, group_by=group_by)
    fields = [*result.group_by, *[f for f in FigureRow.model_fields if f not in ("community", "category", "month")]]
    body = csvfile.csv_text(fields, [[getattr(r, f) for f in fields] for r in result.rows])
    return StreamingResponse(
        iter([body]),
        media_type=csvfile.MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="issues-figures.csv"'},
    )
