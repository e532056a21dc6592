"""HTTP API of the visits service (mounted at ``/visits``): one module per URL area (``/visits/needs/...`` →
``needs.py``). Thin: authorize, call the use cases, commit once."""

from fastapi import APIRouter

from minsheng.platform.auth import Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import photos_router
from services.visits.models import Photo
from services.visits.views import (
    assignments,
    buildings,
    communities,
    compounds,
    coverage,
    due,
    grid_workers,
    households,
    link_requests,
    me,
    needs,
    pii_audit,
    policies,
    residents,
    rounds,
    tasks,
    visits,
)

router = APIRouter()
for area in (
    communities,
    compounds,
    buildings,
    households,
    residents,
    pii_audit,
    me,
    grid_workers,
    assignments,
    policies,
    rounds,
    due,
    tasks,
    visits,
    needs,
    coverage,
):
    router.include_router(area.router)
# Photos grid workers take at the door (attached to a visit by id); field staff only.
router.include_router(
    photos_router("visits", Photo, lambda: ImageLimits(), lambda who: who.has(Role.staff, Role.grid_worker))
)
router.include_router(link_requests.router)
