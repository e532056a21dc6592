from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minsheng.settings import Settings
from tests.support.client import System, running_system


def embedded_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(mode="embedded", data_dir=tmp_path, relay_poll_seconds=0.2, handler_retry_base_seconds=0.01,
                    **overrides)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    """The whole system in one process: SQLite files + the in-process bus."""
    async with running_system(embedded_settings(tmp_path)) as s:
        yield s
