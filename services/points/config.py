"""Points-service policy: caps, expiry, windows, rate limits. Environment variables ``MINSHENG_POINTS_*``.

The platform's :class:`minsheng.settings.Settings` holds what every service shares; these knobs are the
points scheme's own rules, so they live here. ``override()`` swaps them for a test.

Days (the daily caps) and months (leaderboards, statements, expiry warnings) are local to the county's time
zone; every stored instant stays UTC. The service's clock (``now``, ``today``) can be pinned (tests, replaying a
day) without touching the platform's ``utcnow``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.clock import ServiceClock
from minsheng.platform.overridable import Overridable


class PointsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_POINTS_", env_file=None, extra="ignore")

    # Days, months and caps are counted in the county's local time.
    timezone: str = "Asia/Shanghai"

    # Hazard reports: points a verified report earns, by category; a daily cap on hazard points per rider.
    hazard_points: dict[str, int] = {"fire": 20, "gas_leak": 20, "water_leak": 15, "road": 10, "other": 5}
    hazard_daily_points_cap: int = 60
    # All points a rider may earn in one local day (hazards + tasks); 0 = no cap.
    daily_earn_cap: int = 200
    # Duplicate detection: the same category within this radius and time window.
    duplicate_radius_m: float = 200.0
    duplicate_window_minutes: int = 30
    # Abuse: a rider with this many reports found false within the window is flagged for staff.
    false_report_flag_threshold: int = 3
    false_report_window_days: int = 30

    # Expiry: earned points not spent within this many days expire (first in, first out); 0 = never.
    expiry_days: int = 365
    expiry_warning_days: int = 30

    # Photos riders upload (hazard reports, task proofs): an original 12-megapixel phone JPEG fits.
    photo_max_bytes: int = 10 * 1024 * 1024

    # Redemption: one-time codes live this long; a rider may hold this many unused codes at once.
    # (The void window is per merchant: ``void_window_minutes``, 30 by default.)
    code_ttl_seconds: int = 180
    max_active_codes: int = 5

    # Merchant request signatures: accepted clock skew either way.
    signature_window_seconds: int = 300

    # Token buckets (per process, in memory): sustained rate per second and burst.
    merchant_rate_per_second: float = 10.0
    merchant_burst: int = 40
    rider_rate_per_second: float = 1.0
    rider_burst: int = 20

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day_start(self, at: datetime | None = None) -> datetime:
        """The start of ``at``'s local day (by default the service clock's today), as an aware datetime."""
        local = (at or now()).astimezone(self.tz)
        return datetime.combine(local.date(), time(0), tzinfo=self.tz)

    def month_bounds(self, month: date) -> tuple[datetime, datetime]:
        start = datetime(month.year, month.month, 1, tzinfo=self.tz)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return start, nxt

    def local_month(self, at: datetime | None = None) -> date:
        """The first day of ``at``'s local month (by default the service clock's month)."""
        local = (at or now()).astimezone(self.tz)
        return date(local.year, local.month, 1)


_settings = Overridable(PointsSettings())
get, override = _settings.get, _settings.override
_clock = ServiceClock(lambda: get().timezone)
now, pin_clock, tz, today = _clock.now, _clock.pin, _clock.tz, _clock.today
