"""HTTP API of the issues service (mounted at ``/issues``): one module per URL area, named after the path's
first segment (``/catalogue/…`` → ``catalogue.py``, ``/open311/v2/…`` → ``open311.py``). The routes call the
use cases in ``services/issues/*.py`` and commit once."""

from fastapi import APIRouter

from services.issues.views import (
    catalogue,
    escalations,
    figures,
    issues,
    open311,
    open311_keys,
    photos,
    reply_templates,
    votes,
)

router = APIRouter()
router.include_router(catalogue.router)
router.include_router(reply_templates.router)
router.include_router(photos.router)
router.include_router(figures.router)
router.include_router(votes.router)
router.include_router(open311.router)
router.include_router(open311_keys.router)
router.include_router(issues.router)
router.include_router(escalations.router)
