"""What the points routes share: who may call (rider, staff), the rider's rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from minsheng.platform import ratelimit
from minsheng.platform.auth import Principal, Role, current_principal, require
from services.points import config, riders
from services.points.models import Rider

RiderPrincipal = Annotated[Principal, Depends(require(Role.rider))]
Staff = Annotated[Principal, Depends(require(Role.staff))]
RiderOrStaff = Annotated[Principal, Depends(require(Role.rider, Role.staff))]
Caller = Annotated[Principal, Depends(current_principal)]


def rider_limit(rider: Rider | riders.RiderSummary) -> None:
    settings = config.get()
    ratelimit.check(f"rider:{rider.id}", settings.rider_rate_per_second, settings.rider_burst)
