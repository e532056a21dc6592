"""Alembic environment for the issues service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.issues.models import metadata

run_env(metadata)
