"""The issues service's own settings (env prefix ``MINSHENG_ISSUES_``): ``config.get()``; ``override()`` swaps them
for a test."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.overridable import Overridable


class IssuesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_ISSUES_", env_file=None, extra="ignore")

    # Duplicates: a report of the same category within this radius and window joins the open issue.
    dedupe_radius_m: float = 100.0
    dedupe_window_hours: float = 72.0
    # Urgent issues (fire, gas, flooding, an escalated urgent need) must be acknowledged within minutes.
    urgent_ack_minutes: int = 15
    # Residents confirm a resolution (with a 1–5 rating) or reopen it; silence confirms after N days.
    auto_confirm_days: float = 7.0
    reopen_window_days: float = 14.0
    # Photos residents upload with a report.
    photo_max_bytes: int = 10 * 1024 * 1024  # an original 12-megapixel phone JPEG fits
    photo_max_count: int = 9
    # Open311 GeoReport v2.
    jurisdiction_id: str = "zuoyun.gov.cn"
    open311_contact: str = "民生 issues desk, 12345 hotline"
    # Local time for monthly figures (China Standard Time has no daylight saving).
    utc_offset_hours: int = 8
    # Whole-history figures scan every issue (≈1–2 s at a million): each replica caches an answer this long.
    figures_cache_seconds: float = 60.0
    # Jobs.
    sweep_every_seconds: float = 60.0
    sweep_batch: int = 500


_settings = Overridable(IssuesSettings())
get, override = _settings.get, _settings.override
