"""Configuration from the environment (prefix ``MINSHENG_``); see the README's configuration table."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "minsheng-embedded-dev-secret-change-me"
DEV_FIELD_KEY = "bWluc2hlbmctZW1iZWRkZWQtZGV2LWtleS0zMmJ5dGU="  # 32 bytes, base64; embedded mode only


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINSHENG_", env_file=None, extra="ignore")

    mode: Literal["embedded", "distributed"] = "embedded"
    data_dir: Path = Path("var")
    # A SQLAlchemy async URL; ``{service}`` is replaced by the service name, so one template serves all four
    # (e.g. postgresql+asyncpg://minsheng@db/minsheng_{service}). Empty in embedded mode: SQLite under data_dir.
    database_url: str = ""
    db_pool_size: int = 10
    migrate_on_start: bool = True

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_session_timeout_ms: int = 10_000
    kafka_fetch_max_wait_ms: int = 10
    kafka_topic_partitions: int = 3

    relay_batch_size: int = 200
    relay_poll_seconds: float = 1.0
    relay_max_backoff_seconds: float = 5.0  # a down broker costs one connection attempt per 5 s at most
    # Housekeeping: sent outbox rows, inbox rows and idempotency keys older than these are deleted hourly.
    outbox_retention_hours: float = 72
    inbox_retention_days: float = 14
    idempotency_retention_hours: float = 48

    handler_max_attempts: int = 5
    handler_retry_base_seconds: float = 0.2

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "minsheng"
    jwt_ttl_seconds: int = 3600
    # Field encryption (PIPL data at rest), see docs/operations.md → "Rotating the field keys":
    # MINSHENG_FIELD_ENCRYPTION_KEY  the original key (base64 of 16/24/32 bytes), key id MINSHENG_FIELD_KEY_ID;
    # MINSHENG_FIELD_KEYS            more keys by id, JSON: {"k2": "<base64>"};
    # MINSHENG_FIELD_KEY_CURRENT     the key id new values are sealed with (default: MINSHENG_FIELD_KEY_ID);
    # MINSHENG_FIELD_LOOKUP_KEY      the key of the keyed lookup hashes (ID numbers, phones), separate from the
    #                                encryption keys; unset: derived from the original key, as before.
    field_encryption_key: SecretStr | None = None
    field_key_id: str = "k1"
    field_keys: dict[str, SecretStr] = {}
    field_key_current: str | None = None
    field_lookup_key: SecretStr | None = None

    cors_origins: list[str] = []
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _secrets_have_no_working_defaults_outside_embedded(self) -> Settings:
        if self.mode == "embedded":
            self.jwt_secret = self.jwt_secret or SecretStr(DEV_JWT_SECRET)
            self.field_encryption_key = self.field_encryption_key or SecretStr(DEV_FIELD_KEY)
        else:
            missing = [n for n in ("jwt_secret", "field_encryption_key") if getattr(self, n) is None]
            if missing:
                names = ", ".join("MINSHENG_" + n.upper() for n in missing)
                raise ValueError(f"distributed mode needs {names}")
            if not self.database_url:
                raise ValueError("distributed mode needs MINSHENG_DATABASE_URL")
        return self

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url.replace("{service}", service)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    @property
    def secret(self) -> str:
        assert self.jwt_secret is not None
        return self.jwt_secret.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    return Settings()
