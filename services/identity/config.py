"""Identity-service policy: WeChat, sessions, passwords, lockout. Environment variables ``MINSHENG_IDENTITY_*``.

``override()`` swaps them for a test.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from minsheng.platform.overridable import Overridable


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_IDENTITY_", env_file=None, extra="ignore")

    # WeChat mini-program. An empty api base means "the local stand-in" (embedded mode only, unless
    # ``wechat_standin`` is set: the stand-in is a development tool and is refused in distributed mode).
    wechat_api_base: str = ""
    wechat_appid: str = "wx-minsheng-dev"
    wechat_secret: SecretStr = SecretStr("minsheng-dev-standin-secret")
    wechat_standin: bool = False
    wechat_timeout_seconds: float = 5.0

    # Sessions: refresh tokens (opaque, stored hashed, rotated on every use).
    refresh_ttl_seconds: int = 30 * 24 * 3600
    staff_refresh_ttl_seconds: int = 12 * 3600

    # Staff sign-in: lockout after this many failures in a row (per account name and per source address),
    # doubling from lockout_base_seconds up to lockout_max_seconds.
    lockout_threshold: int = 5
    lockout_base_seconds: float = 30.0
    lockout_max_seconds: float = 900.0
    address_lockout_threshold: int = 20
    password_min_length: int = 10
    # argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~50-100 ms on a server core.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    totp_issuer: str = "Minsheng"

    # Token-bucket rate limits on the sign-in endpoints, per source address (per process).
    signin_rate_per_second: float = 2.0
    signin_burst: int = 20

    # Keys: a rotated key stays published (and accepted) this long after it stops signing.
    key_overlap_seconds: int = 900 + 300
    key_reload_seconds: float = 60.0

    # Sign-in records (PIPL): how long login and token events are kept.
    auth_event_retention_days: int = 180


_settings = Overridable(IdentitySettings())
get, override = _settings.get, _settings.override
