"""What the points routes share: who may call (rider, staff), the rider's rate limit, a merchant's monthly
statement as JSON or CSV (the merchant API and staff)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends
from fastapi.responses import JSONResponse, Response

from minsheng.platform import csvfile, ratelimit
from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.service import Runtime, UoW
from services.points import config, riders, settlement, statements
from services.points.models import Rider

RiderPrincipal = Annotated[Principal, Depends(require(Role.rider))]
Staff = Annotated[Principal, Depends(require(Role.staff))]
RiderOrStaff = Annotated[Principal, Depends(require(Role.rider, Role.staff))]
Caller = Annotated[Principal, Depends(current_principal)]


def rider_limit(rider: Rider | riders.RiderSummary) -> None:
    settings = config.get()
    ratelimit.check(f"rider:{rider.id}", settings.rider_rate_per_second, settings.rider_burst)


async def statement_response(
    uow: UoW, runtime: Runtime, merchant_id: UUID, month: str, fmt: Literal["json", "csv"]
) -> Response:
    first = statements.parse_month(month)
    if fmt == "csv":
        text = await settlement.statement_csv(uow, runtime.settings, merchant_id, first)
        return Response(
            csvfile.encode(text),
            media_type=csvfile.MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="minsheng-points-{merchant_id}-{first:%Y-%m}.csv"'},
        )
    summary = await settlement.statement_summary(uow, merchant_id, first)
    return JSONResponse(summary.model_dump(mode="json"))
