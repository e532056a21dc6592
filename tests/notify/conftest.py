"""Fixtures: the issues and notify services together (embedded), quiet hours off unless a test sets them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import time
from pathlib import Path

import pytest

from services.issues.demo_catalogue import seed_catalogue
from services.notify import config
from tests.conftest import embedded_settings
from tests.support.client import System, running_system

FAST = {
    "quiet_start": time(0, 0),
    "quiet_end": time(0, 0),
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.5,
    "sender_poll_seconds": 0.05,
    "throttle_wait_seconds": 0.3,
}


@pytest.fixture
def fast_notify() -> Iterator[config.NotifySettings]:
    with config.override(**FAST) as s:
        yield s


@pytest.fixture
async def notify(tmp_path: Path, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    async with running_system(embedded_settings(tmp_path), services=("issues", "notify")) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s
