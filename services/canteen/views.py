"""HTTP API of the canteen service (mounted at ``/canteen``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
