"""HTTP API of the visits service (mounted at ``/visits``): one module per URL area (``/visits/needs/...`` →
``needs.py``). Thin: authorize, call the use cases, commit once."""

from fastapi import APIRouter

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
    photos,
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
    photos,  # uploads of the photos taken at the door (a visit names them by id)
    link_requests,
):
    router.include_router(area.router)
