"""Configuration from the environment (prefix ``MINSHENG_``); see the README's configuration table."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # Tokens: signed by the identity service (ES256, keys in its database, published as JWKS); every service
    # verifies them against the identity's keys: in-process in the embedded mode, over HTTP in the
    # distributed mode (MINSHENG_IDENTITY_JWKS_URL, e.g. http://identity:8000/identity/.well-known/jwks.json).
    jwt_issuer: str = "minsheng"
    jwt_audience: str = "minsheng"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=120)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=900)
    identity_jwks_url: str = ""
    jwks_cache_seconds: float = 600.0
    jwks_min_refetch_seconds: float = 30.0
    field_encryption_key: SecretStr | None = None

    cors_origins: list[str] = []
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _secrets_have_no_working_defaults_outside_embedded(self) -> Settings:
        if self.mode == "embedded":
            self.field_encryption_key = self.field_encryption_key or SecretStr(DEV_FIELD_KEY)
        else:
            missing = [n for n in ("field_encryption_key",) if getattr(self, n) is None]
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
        """A service-side key for keyed hashes that are not about tokens (voter pseudonyms, rider references),
        derived from the field-encryption key. It signs nothing: tokens come from the identity service."""
        assert self.field_encryption_key is not None
        key = base64.b64decode(self.field_encryption_key.get_secret_value())
        return hmac.new(key, b"minsheng-service-hash-key", hashlib.sha256).hexdigest()


@lru_cache
def get_settings() -> Settings:
    return Settings()
