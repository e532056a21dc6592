"""HTTP API of the visits service (mounted at ``/visits``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
