"""Fixtures for the issues service's tests: the whole system with the demo catalogue loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.issues.demo import seed_catalogue
from tests.support.client import System


@pytest.fixture
async def issues(system: System) -> AsyncIterator[System]:
    """The embedded system (SQLite + in-process bus) with the issues catalogue (no demo history)."""
    await seed_catalogue(system.runtime("issues"))
    yield system


@pytest.fixture
async def pg_issues(pg_system: System) -> AsyncIterator[System]:
    await seed_catalogue(pg_system.runtime("issues"))
    yield pg_system
