"""Alembic environment for the identity service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.identity.models import metadata

run_env(metadata)
