"""Configuration from the environment (prefix ``MINSHENG_``). The comment beside each field is its entry in
docs/reference/configuration.md (``python docs/generate.py``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_FIELD_KEY = "bWluc2hlbmctZW1iZWRkZWQtZGV2LWtleS0zMmJ5dGU="  # 32 bytes, base64; embedded mode only


class KafkaSettings(BaseSettings):
    """The Kafka part of the settings, on its own so the topic job reads it without the services' secrets."""

    model_config = SettingsConfigDict(env_prefix="MINSHENG_", env_file=None, extra="ignore")

    # Kafka bootstrap servers.
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Consumer-group session timeout.
    kafka_session_timeout_ms: int = 10_000
    # How long the broker may hold a consumer's fetch when there is nothing new. Apache Kafka answers as soon as
    # a record arrives, so this costs no latency; a short wait only makes idle consumers poll (10 ms: 3.7 % of
    # a core per idle consumer, 500 ms: 0.4 %). Tansu answers only when the wait is over: 10 there.
    kafka_fetch_max_wait_ms: int = 500
    # The one source of the topic layout: `minsheng topics create` and a service creating a missing topic both
    # read these (partitions cap consumer replicas; growing them later reorders keys, see docs/operations.md).
    kafka_topic_partitions: int = 6
    kafka_replication_factor: int = 1  # topic replication (3 on a cluster)
    kafka_min_insync_replicas: int = 0  # 0: the broker's default (2 on a cluster)
    kafka_retention_hours: int = 168  # event topics' retention (set by the topic job): the replay window
    kafka_dlq_retention_hours: int = 720  # dead-letter topics' retention
    # Put in front of every topic, dead-letter topic and consumer group ("staging." → staging.points.hazard,
    # group staging.issues), so two deployments can share one Kafka cluster.
    kafka_prefix: str = ""
    # How often a consumer compares its offsets with the log's (a broker that lost data); also on assignment.
    kafka_offset_check_seconds: float = 30.0
    # The relay's producer is idempotent: a send the client retries after a lost acknowledgement is written once.
    # Correctness never depends on it (the consumers' inboxes absorb duplicates); turn it off only for a broker
    # without idempotent producers (Tansu).
    kafka_idempotent_producer: bool = True
    # How long a publish waits for a broker that does not answer before it gives up: within it, the idempotent
    # producer's retries write each record once (a broker restart); past it, the relay rolls back its claim
    # (a transaction held open through a long outage would hold back vacuum) and sends it again later, under a
    # fresh producer, which may write a record twice (the consumers' inboxes absorb it).
    kafka_publish_patience_seconds: float = Field(default=120.0, gt=0)

    @field_validator("kafka_prefix")
    @classmethod
    def _prefix_is_a_topic_name_part(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,60}", value):
            raise ValueError("MINSHENG_KAFKA_PREFIX may only contain letters, digits, '.', '_' and '-'")
        return value

    def topic_name(self, name: str) -> str:
        """A topic or consumer group's name on the cluster."""
        return self.kafka_prefix + name


class Settings(KafkaSettings):
    """Every setting of a Minsheng process."""

    # `embedded` (SQLite + in-process bus) or `distributed` (PostgreSQL + Kafka); `serve` defaults to distributed.
    mode: Literal["embedded", "distributed"] = "embedded"
    # Where the embedded mode keeps its SQLite files.
    data_dir: Path = Path("var")
    # A SQLAlchemy async URL; ``{service}`` is replaced by the service name, so one template serves all four
    # (e.g. postgresql+asyncpg://minsheng@db/minsheng_{service}). Empty in embedded mode: SQLite under data_dir.
    database_url: str = ""
    # Connections per service process: the pool keeps them open, and a request finding them all busy waits for
    # one (up to 30 s, then 503) rather than opening another.
    db_pool_size: int = 10
    # Connections a process may open beyond db_pool_size under a burst; each is closed when given back, so
    # under steady load above the pool size every request past it pays a new connection (fork, TLS, auth).
    db_max_overflow: int = 0
    # Apply migrations at start; set false when a migration job runs them.
    migrate_on_start: bool = True
    # What a `serve` process runs (docs/scaling.md): `all` (HTTP API, outbox relay, consumers and jobs), `web`
    # (the HTTP API), `relay` (the outbox relay and the deployment's jobs) or `consumer` (the event consumers).
    # Only `all` and `web` migrate; `relay` and `consumer` wait for the schema.
    role: Literal["all", "web", "relay", "consumer"] = "all"

    # Outbox rows per publish batch.
    relay_batch_size: int = 200
    # The relay's fallback poll (it is woken on commit anyway).
    relay_poll_seconds: float = 1.0
    relay_max_backoff_seconds: float = 5.0  # a down broker costs one connection attempt per 5 s at most
    # Housekeeping: sent outbox rows, inbox rows and idempotency keys older than these are deleted hourly.
    outbox_retention_hours: float = 72
    inbox_retention_days: float = 14  # handled-event (inbox) rows are kept this long
    idempotency_retention_hours: float = 48  # a client may retry with its Idempotency-Key this long

    # Handler attempts before an event is dead-lettered.
    handler_max_attempts: int = 5
    # First retry delay (doubles each attempt).
    handler_retry_base_seconds: float = 0.2

    # Tokens are signed by the identity service (ES256, keys in its database, published as JWKS); every
    # service verifies them against those keys (in-process embedded, over HTTP distributed).
    # Token issuer (`iss`), issued and required.
    jwt_issuer: str = "minsheng"
    # Token audience (`aud`), issued and required.
    jwt_audience: str = "minsheng"
    # Clock skew accepted on `exp`/`iat`.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=120)
    # Access-token lifetime (at most 15 minutes).
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=900)
    # Distributed mode, every service but identity: the identity's JWKS, e.g.
    # http://identity:8000/identity/.well-known/jwks.json.
    identity_jwks_url: str = ""
    # How long a fetched JWKS is used before it is read again.
    jwks_cache_seconds: float = 600.0
    # An unknown `kid` fetches the JWKS again at most this often.
    jwks_min_refetch_seconds: float = 30.0
    # Base64 of 32 bytes: the original field key (AES-GCM for personal data at rest, key id `field_key_id`); a
    # development value in embedded mode only. Rotation: docs/operations.md → "Rotating the field keys".
    field_encryption_key: SecretStr | None = None
    # The key id of `field_encryption_key` in the field keyring.
    field_key_id: str = "k1"
    # More field keys by id, a JSON object: {"k2": "<base64 of 32 bytes>"}.
    field_keys: dict[str, SecretStr] = {}
    # The key id new values are sealed with (default: `field_key_id`).
    field_key_current: str | None = None
    # Base64 (>= 16 bytes): the key of the keyed lookup hashes (ID numbers, phones), the same in every service;
    # unset: derived from the original field key.
    field_lookup_key: SecretStr | None = None

    # Uploaded photos and files live outside the databases. `local`: files under `storage_local_dir`; `s3`: an
    # S3-compatible object store. Unset: `s3` when `storage_s3_endpoint` is set, else `local`.
    storage_backend: Literal["local", "s3"] | None = None
    # The local store's directory (default: <data_dir>/objects); share it between replicas or use `s3`.
    storage_local_dir: Path | None = None
    # The S3 API endpoint the services call, e.g. http://seaweedfs:8333 (empty with `s3`: AWS's own).
    storage_s3_endpoint: str = ""
    # The endpoint phones reach, used in signed URLs (default: `storage_s3_endpoint`).
    storage_s3_public_endpoint: str = ""
    storage_s3_bucket: str = "minsheng"  # the bucket (created at start when missing)
    storage_s3_region: str = "us-east-1"  # the region signed into requests and URLs
    storage_s3_access_key: SecretStr | None = None  # the S3 access key id
    storage_s3_secret_key: SecretStr | None = None  # the S3 secret access key
    # `path` (http://host/bucket/key: SeaweedFS, MinIO) or `virtual` (http://bucket.host/key: OSS, COS).
    storage_s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    # How long a signed photo URL works.
    storage_signed_url_seconds: int = Field(default=300, ge=10, le=86_400)

    # Browser origins allowed by CORS (a JSON list of exact origins such as ["https://h5.example.gov.cn"]), for H5
    # pages calling the API from another origin. Unset: none in distributed mode, any http://localhost or
    # http://127.0.0.1 port in embedded mode (local H5 development). Mini-programs do not need CORS.
    cors_origins: list[str] | None = None
    # Log level.
    log_level: str = "INFO"
    # One JSON object per log line.
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

    @property
    def storage_backend_in_use(self) -> Literal["local", "s3"]:
        if self.storage_backend is not None:
            return self.storage_backend
        return "s3" if self.storage_s3_endpoint else "local"

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
