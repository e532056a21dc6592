"""Notify-service settings: providers, quiet hours, retries, rate limits. Environment ``MINSHENG_NOTIFY_*``.

Provider credentials have no working defaults. In the embedded mode every channel talks to the local
stand-in (``standin.py``, real HTTP on 127.0.0.1); in the distributed mode the stand-in is refused unless
``MINSHENG_NOTIFY_STANDIN=true`` is set explicitly (demo and test deployments), and a channel without
credentials stays unconfigured: its deliveries wait (status ``held``, reason ``channel_not_configured``)
rather than being dropped.

Quiet hours and the digest's and bill's days and months are local to ``timezone``; every stored instant stays
UTC. The service's clock (``now``, ``today``) can be pinned (tests, replaying a day) without touching the
platform's ``utcnow``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.clock import ServiceClock
from minsheng.platform.overridable import Overridable


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MINSHENG_NOTIFY_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    # None: on in the embedded mode, off in the distributed mode. True in distributed mode = demo/test only.
    standin: bool | None = None
    standin_host: str = "127.0.0.1"
    standin_port: int = 0  # 0 = any free port (the embedded default); fixed when another process must reach it

    # WeChat mini-program (subscribe messages).
    wechat_appid: str = ""
    wechat_secret: SecretStr | None = None
    wechat_base_url: str = "https://api.weixin.qq.com"
    miniprogram_state: str = "formal"  # developer | trial | formal
    # WeCom (企业微信) group robots for staff: community code → robot key; "*" is the district duty group.
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    wecom_robot_keys: dict[str, SecretStr] = {}
    # Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256).
    sms_base_url: str = "https://sms.tencentcloudapi.com"
    sms_secret_id: str = ""
    sms_secret_key: SecretStr | None = None
    sms_app_id: str = ""
    sms_sign_name: str = "民生服务"
    sms_region: str = "ap-guangzhou"

    timezone: str = "Asia/Shanghai"
    quiet_start: time = time(22, 0)
    quiet_end: time = time(7, 0)

    # Sender loop: how often it polls when idle, how many rows it claims per channel per round, how long a
    # claimed row is leased before another replica may take it over (crash recovery).
    sender_poll_seconds: float = 0.5  # a commit that writes deliveries wakes the sender at once
    sender_batch: int = 50
    # Provider calls in flight at once per process. Few connections keep the HTTP pool cheap (httpx scans all
    # of them per request); at ~100 ms a provider call, 16 carry ~160 messages/s, above the SMS rate limit.
    sender_concurrency: int = 16
    lease_seconds: float = 30.0
    http_timeout_seconds: float = 5.0
    max_attempts: int = 12
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    throttle_wait_seconds: float = 60.0
    # Per-channel token buckets (per process): sustained messages per second and burst.
    rate_per_second: dict[str, float] = {"wechat": 200.0, "sms": 50.0, "wecom": 20 / 60}
    burst: dict[str, int] = {"wechat": 400, "sms": 100, "wecom": 20}

    # The staff's daily digest (escalations, overdue issues) goes to each duty group at this local time; the
    # job looks every ``digest_check_seconds``.
    digest_time: time = time(8, 30)
    digest_check_seconds: float = 300.0

    # Retention: delivered messages and their deliveries are deleted after this many days.
    retention_days: int = 180

    # Pages the mini-program opens from a message (WeChat ``page``; the inbox's ``link``).
    issue_page: str = "pages/issue/detail"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def in_quiet_hours(self, at: datetime | None = None) -> bool:
        """Whether ``at`` (by default the service clock's now) falls in the local quiet hours."""
        local = (at or now()).astimezone(self.tz).time()
        if self.quiet_start > self.quiet_end:  # spans midnight
            return local >= self.quiet_start or local < self.quiet_end
        return self.quiet_start <= local < self.quiet_end

    def quiet_hours_end(self, at: datetime | None = None) -> datetime:
        """The next end of quiet hours after ``at`` (an aware datetime; by default the service clock's now)."""
        local = (at or now()).astimezone(self.tz)
        end = datetime.combine(local.date(), self.quiet_end, tzinfo=self.tz)
        if end <= local:
            end += timedelta(days=1)
        return end

    def use_standin(self, mode: str) -> bool:
        return self.standin if self.standin is not None else mode == "embedded"


_settings = Overridable(NotifySettings())
get, override = _settings.get, _settings.override
_clock = ServiceClock(lambda: get().timezone)
now, pin_clock, tz, today = _clock.now, _clock.pin, _clock.tz, _clock.today
