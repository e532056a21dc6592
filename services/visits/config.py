"""Visits configuration (env prefix ``MINSHENG_VISITS_``) and the service's clock.

Rounds, due dates and "overdue" are local calendar dates in the county's time zone; every stored instant
stays UTC. The clock can be pinned (tests, replaying a day) without touching the platform's ``utcnow``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.clock import ServiceClock
from minsheng.platform.overridable import Overridable


class VisitsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_VISITS_", env_file=None, extra="ignore")

    timezone: str = "Asia/Shanghai"
    # A canteen absence alert becomes a welfare-check task due within this many hours.
    welfare_check_due_hours: int = Field(default=24, ge=1, le=168)
    # A check-in farther than this from the building is flagged (``far_from_home``) for supervisors.
    checkin_max_distance_m: float = Field(default=300.0, ge=10)
    # How far back a visit may be recorded (offline apps sync late); never in the future.
    backdate_max_days: int = Field(default=30, ge=0, le=365)
    # A need resolved but not confirmed by the resident within this many days is confirmed automatically.
    auto_confirm_days: int = Field(default=7, ge=1, le=90)
    auto_confirm_every_seconds: float = 3600.0
    tier_refresh_every_seconds: float = 3600.0
    # PIPL: residents moved away or deceased for longer than this lose their phone, ID number and health notes.
    pii_retention_days: int = Field(default=365, ge=1, le=36500)
    pii_retention_every_seconds: float = 3600.0


_settings = Overridable(VisitsSettings())
get, override = _settings.get, _settings.override
_clock = ServiceClock(lambda: get().timezone)
now, pin_clock, tz, today = _clock.now, _clock.pin, _clock.tz, _clock.today


def local_date(at: datetime) -> date:
    return at.astimezone(tz()).date()


def start_of_local_day(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=tz())


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def days(n: int) -> timedelta:
    return timedelta(days=n)
