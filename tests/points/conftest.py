"""Fixtures for the points service's tests: the points service alone (fast, and independent of the other
services' work in progress), on SQLite or PostgreSQL, with the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import alone_on_postgres, embedded_settings
from tests.support.client import System, running_system


@pytest.fixture
async def points(tmp_path: Path) -> AsyncIterator[System]:
    """Only the points service: SQLite + the in-process bus (events from other services are injected)."""
    async with running_system(embedded_settings(tmp_path), services=("points",)) as s:
        yield s


@pytest.fixture
async def pg_points(tmp_path: Path, pg_base_url: str) -> AsyncIterator[System]:
    """Only the points service, on a fresh PostgreSQL database of its own (created and dropped here: one
    database instead of four keeps these tests quick)."""
    async with alone_on_postgres(tmp_path, pg_base_url, "points") as s:
        yield s
