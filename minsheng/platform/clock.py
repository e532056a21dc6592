"""A service's clock: the platform's ``utcnow`` unless pinned (tests, replaying a day), and the local calendar
of the service's time zone. Every instant it gives is UTC; local dates are for the calendar only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from minsheng.platform.ids import utcnow


class ServiceClock:
    def __init__(self, timezone: Callable[[], str]) -> None:
        """``timezone``: the IANA name, read from the service's settings at each use."""
        self._timezone = timezone
        self._pinned: datetime | None = None

    def now(self) -> datetime:
        """The current instant (UTC), unless pinned."""
        return self._pinned.astimezone(UTC) if self._pinned is not None else utcnow()

    def pin(self, at: datetime | None) -> None:
        """Pin (or with ``None`` release) the clock, without touching the platform's ``utcnow``. For tests and
        operational replays only."""
        if at is not None and at.tzinfo is None:
            raise ValueError("pin the clock with a timezone-aware datetime")
        self._pinned = at

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self._timezone())

    def today(self) -> date:
        return self.now().astimezone(self.tz()).date()
