"""What the visits routes share: who may call (the viewer and the role dependencies) and committing once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.routes import commit_or_conflict
from minsheng.platform.service import UoW
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer, require_worker_registered, viewer_of
from services.visits.models import metadata

STAFF = Depends(require(Role.staff))
FIELD = Depends(require(Role.staff, Role.grid_worker))
ADMIN = Depends(require(Role.admin))
RESIDENT = Depends(require(Role.resident))


async def _viewer(uow: UoW, principal: Principal = Depends(current_principal)) -> Viewer:
    viewer = await viewer_of(uow, principal)
    require_worker_registered(viewer)
    return viewer


Who = Annotated[Viewer, Depends(_viewer)]


async def commit(uow: UnitOfWork) -> None:
    await commit_or_conflict(
        uow, "Someone else changed or created the same thing at the same time; reload and retry.", metadata
    )
