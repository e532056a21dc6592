"""Routes under ``/points/hazard-reports``: riders report hazards; staff see those in scope."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minsheng.platform.access import is_staff
from minsheng.platform.coords import CoordSystemQuery, reproject
from minsheng.platform.idempotency import IdempotencyKey, idempotent
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.photos import owned_photo_paths, refuse_photo_urls
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.service import UoW
from services.points import hazards, riders
from services.points.models import (
    HazardReport,
    HazardReportCreate,
    HazardReportFilters,
    HazardReportPublic,
    Photo,
)
from services.points.views.deps import RiderOrStaff, RiderPrincipal, rider_limit

router = APIRouter(tags=["hazard reports"])


def _report(report: HazardReport) -> HazardReportPublic:
    return HazardReportPublic.model_validate(report, from_attributes=True)


@router.post(
    "/hazard-reports",
    status_code=201,
    response_model=HazardReportPublic,
    summary="Report a hazard (fire, gas or water leak are forwarded as urgent issues)",
    responses=RATE_LIMITED,
)
async def report_hazard(
    body: HazardReportCreate, uow: UoW, who: RiderPrincipal, idempotency_key: str | None = IdempotencyKey
) -> JSONResponse:
    refuse_photo_urls(body.photo_urls, "points")
    rider, duplicates = await hazards.reporting_rider(uow, who.sub, body)
    rider_limit(rider)
    photos = await owned_photo_paths(uow, Photo, "points", who.sub, body.photo_ids)

    async def action() -> tuple[int, HazardReportPublic]:
        return 201, await hazards.report_hazard(uow, rider, body.model_copy(update={"photo_urls": photos}), duplicates)

    return await idempotent(uow, key=idempotency_key, scope=f"rider:{rider.id}:hazard-report", body=body, action=action)


@router.get("/hazard-reports", summary="Riders: your reports. Staff: reports in your scope")
async def list_reports(
    uow: UoW,
    who: RiderOrStaff,
    page: PageQuery,
    filters: Annotated[HazardReportFilters, Query()],
    coord_system: CoordSystemQuery = None,
) -> Page[HazardReportPublic]:
    rider = None if is_staff(who) else await riders.rider_by_subject(uow, who.sub)
    reports = await hazards.list_reports(uow, rider, page=page, filters=filters, who=who)
    return reports.map(lambda r: reproject(_report(r), coord_system))


@router.get("/hazard-reports/{report_id}", summary="One report with the issue's progress")
async def get_report(
    report_id: UUID, uow: UoW, who: RiderOrStaff, coord_system: CoordSystemQuery = None
) -> HazardReportPublic:
    if is_staff(who):
        return reproject(_report(await hazards.get_report_as_staff(uow, who, report_id)), coord_system)
    rider = await riders.rider_by_subject(uow, who.sub)
    return reproject(_report(await hazards.get_report(uow, rider, report_id)), coord_system)
