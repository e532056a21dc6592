"""The points clock: local days and months follow ``config.now()``, which a test (or a replay) may pin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from services.points import config, statements


@pytest.fixture
def pinned() -> Iterator[None]:
    # 2026-11-30 17:30 UTC is already 1 December, 01:30, in Asia/Shanghai.
    config.pin_clock(datetime(2026, 11, 30, 17, 30, tzinfo=UTC))
    yield
    config.pin_clock(None)


def test_the_local_day_and_month_follow_the_pinned_clock(pinned: None) -> None:
    assert config.today() == date(2026, 12, 1)
    assert config.get().day_start().isoformat() == "2026-12-01T00:00:00+08:00"
    assert config.get().local_month() == date(2026, 12, 1)
    assert statements.parse_month(None) == date(2026, 12, 1)  # "this month" of the leaderboards and statements
