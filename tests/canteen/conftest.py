from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minsheng.platform.db import create_database_if_missing
from services.canteen import config
from tests.canteen.helpers import TODAY, pin
from tests.conftest import embedded_settings
from tests.support.client import System, running_system
from tests.support.infra import database_template, drop_databases


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
    template = database_template(pg_base_url)
    await create_database_if_missing(template.replace("{service}", "canteen"))
    try:
        async with running_system(embedded_settings(tmp_path, database_url=template), services=("canteen",)) as s:
            yield s
    finally:
        await drop_databases(pg_base_url, template, ("canteen",))
