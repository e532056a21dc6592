"""A service's clock: pinned for a test, released back to the platform's; local dates in its time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from minsheng.platform.clock import ServiceClock
from minsheng.platform.ids import utcnow


def test_a_pinned_clock_gives_utc_and_the_local_date() -> None:
    clock = ServiceClock(lambda: "Asia/Shanghai")
    # 23:30 UTC on 1 March is already 2 March in Shanghai.
    clock.pin(datetime(2026, 3, 2, 7, 30, tzinfo=timezone(timedelta(hours=8))))
    assert clock.now() == datetime(2026, 3, 1, 23, 30, tzinfo=UTC) and clock.now().tzinfo is UTC
    assert clock.today() == date(2026, 3, 2)
    clock.pin(None)
    assert abs(clock.now() - utcnow()) < timedelta(seconds=5)


def test_a_naive_pin_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ServiceClock(lambda: "UTC").pin(datetime(2026, 3, 1, 12))
