"""Alembic environment for the canteen service (its own metadata and version table)."""

from minsheng.platform.migrations import run_env
from services.canteen.models import metadata

run_env(metadata)
