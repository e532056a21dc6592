"""Alembic environment for the notify service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.notify.models import metadata

run_env(metadata)
