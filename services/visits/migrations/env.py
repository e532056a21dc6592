"""Alembic environment for the visits service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.visits.models import metadata

run_env(metadata)
