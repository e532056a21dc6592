"""Routes under ``/canteen/care``: absence alerts and the absence scan."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import UoW
from services.canteen import canteens, care
from services.canteen.models import AbsenceAlertPublic, AlertStatus, ScanResult
from services.canteen.views.deps import Staff, commit, county_only

router = APIRouter(tags=["care"])


@router.get("/care/alerts", summary="Absence alerts for the canteens you manage")
async def list_alerts(
    *,
    uow: UoW,
    who: Staff,
    canteen_id: UUID | None = None,
    status: AlertStatus | None = None,
    page: PageQuery,
) -> Page[AbsenceAlertPublic]:
    canteen = await canteens.managed_canteen(uow, who, canteen_id) if canteen_id is not None else None
    found = await care.list_alerts(uow, who, page, canteen=canteen, status=status)
    return found.map(from_row(AbsenceAlertPublic))


@router.post("/care/scan", summary="Run the absence scan now (it also runs periodically)")
async def scan(uow: UoW, who: Staff, cipher: Cipher) -> ScanResult:
    county_only(who)
    result = await care.scan_absences(uow, cipher)
    await commit(uow)
    return result
