"""Alembic environment for the points service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.points.models import metadata

run_env(metadata)
