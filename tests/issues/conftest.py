"""Fixtures for the issues service's tests: the issues service alone (fast), or the whole system (for flows
that cross services), each with the demo catalogue loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.issues.demo_catalogue import seed_catalogue
from tests.conftest import embedded_settings
from tests.support.client import System, running_system


@pytest.fixture
async def issues(tmp_path: Path) -> AsyncIterator[System]:
    """The issues service alone (SQLite + in-process bus) with its catalogue (no demo history)."""
    async with running_system(embedded_settings(tmp_path), services=("issues",)) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s


@pytest.fixture
async def everyone(system: System) -> AsyncIterator[System]:
    """The whole embedded system with the issues catalogue: riders' reports and visit needs arrive for real."""
    await seed_catalogue(system.runtime("issues"))
    yield system


@pytest.fixture
async def pg_issues(pg_system: System) -> AsyncIterator[System]:
    await seed_catalogue(pg_system.runtime("issues"))
    yield pg_system
