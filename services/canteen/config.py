"""Canteen configuration (env prefix ``MINSHENG_CANTEEN_``) and the service's clock.

Meals happen on local dates in the county's time zone; every stored instant stays UTC. The clock can be
pinned (tests, replaying a day) without touching the platform's ``utcnow``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.clock import ServiceClock
from minsheng.platform.overridable import Overridable


class CanteenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_CANTEEN_", env_file=None, extra="ignore")

    timezone: str = "Asia/Shanghai"
    # Care signals: a diner who ate on >= regular_min_days of the regular_window_days up to their last meal,
    # then missed absence_days service days in a row, raises one AbsenceAlert per absence spell.
    regular_window_days: int = Field(default=30, ge=1, le=366)
    regular_min_days: int = Field(default=20, ge=1, le=366)
    absence_days: int = Field(default=3, ge=1, le=60)
    absence_scan_every_seconds: float = 3600.0
    no_show_sweep_every_seconds: float = 900.0
    delivery_points: int = Field(default=5, ge=0)
    # PIPL: diners gone (moved, deceased, withdrawn) for longer than this lose phone, ID number, health notes.
    pii_retention_days: int = Field(default=365, ge=1, le=36500)
    pii_retention_every_seconds: float = 3600.0


_settings = Overridable(CanteenSettings())
get, override = _settings.get, _settings.override
_clock = ServiceClock(lambda: get().timezone)
now, pin_clock, tz, today = _clock.now, _clock.pin, _clock.tz, _clock.today


def local_instant(day: date, at: time) -> datetime:
    """A local wall-clock time on ``day`` as an aware datetime (compare/store it as UTC)."""
    return datetime.combine(day, at, tzinfo=tz()).astimezone(UTC)


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-11' -> (2026-11-01, 2026-12-01)."""
    year, mon = (int(p) for p in month.split("-"))
    first = date(year, mon, 1)
    nxt = date(year + (mon == 12), 1 if mon == 12 else mon + 1, 1)
    return first, nxt


def days(n: int) -> timedelta:
    return timedelta(days=n)
