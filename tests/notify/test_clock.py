"""The notify clock: quiet hours follow ``config.now()``, which a test (or a replay) may pin."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from services.notify import config


def test_quiet_hours_follow_the_pinned_clock() -> None:
    with config.override(quiet_start=time(22, 0), quiet_end=time(7, 0)):
        try:
            config.pin_clock(datetime(2026, 11, 30, 15, 30, tzinfo=UTC))  # 23:30 in Asia/Shanghai
            assert config.today() == date(2026, 11, 30)
            assert config.get().in_quiet_hours()
            assert config.get().quiet_hours_end().isoformat() == "2026-12-01T07:00:00+08:00"
            config.pin_clock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))  # 09:00
            assert not config.get().in_quiet_hours()
        finally:
            config.pin_clock(None)
