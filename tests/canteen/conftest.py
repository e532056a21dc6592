from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.canteen import config
from tests.canteen.helpers import TODAY, pin
from tests.conftest import alone_on_postgres, embedded_settings
from tests.support.client import System, running_system


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    """Every canteen test starts at 08:00 local on TODAY; tests move it with ``pin``."""
    pin(TODAY, 8, 0)
    yield
    config.pin_clock(None)


@pytest.fixture
async def canteen(tmp_path: Path) -> AsyncIterator[System]:
    """The canteen service alone, embedded (SQLite + in-process bus): the same code path as ``system`` without
    migrating and starting the other three services, which keeps these tests fast. Cross-service flows use
    ``system`` / ``kafka_system``."""
    async with running_system(embedded_settings(tmp_path), services=("canteen",)) as s:
        yield s


@pytest.fixture
async def pg_canteen(tmp_path: Path, pg_base_url: str) -> AsyncIterator[System]:
    """The canteen service alone on a fresh PostgreSQL database (only its own: creating and dropping the other
    three services' databases would double the cost of every test)."""
    async with alone_on_postgres(tmp_path, pg_base_url, "canteen") as s:
        yield s
