"""The composition root: the only place that knows every service. (The platform imports none of them.)"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import FastAPI

from minsheng import SERVICES
from minsheng.platform.bus.base import EventBus
from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.service import ROLE_PARTS, ServiceRuntime, ServiceSpec
from minsheng.platform.tokens import JwksKeys, KeyRing, KeySource
from minsheng.settings import Settings


def load_spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.app").SPEC  # type: ignore[no-any-return]


def service_module(name: str, module: str) -> object:
    """A service's module by name (the CLI's service-specific commands), keeping service imports here."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}")
    return importlib.import_module(f"services.{name}.{module}")


async def migrate_service(settings: Settings, name: str) -> str:
    """Apply a service's migrations to its database, creating a missing PostgreSQL database first (``minsheng
    migrate``, the tests' migrated SQLite files). Returns the database URL, password hidden."""
    from minsheng.platform.db import Database, create_database_if_missing
    from minsheng.platform.migrations import upgrade

    spec = load_spec(name)
    url = settings.database_url_for(name)
    await create_database_if_missing(url)
    db = Database(url, spec.tables)
    try:
        await upgrade(db, name, spec.migrations_dir, settings=settings)
    finally:
        await db.dispose()
    return db.url.render_as_string(hide_password=True)


def make_bus(settings: Settings, client_id: str = "minsheng") -> EventBus:
    if settings.mode == "embedded":
        return InProcessBus()
    return KafkaBus(
        settings.kafka_bootstrap,
        client_id=client_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor,
        prefix=settings.kafka_prefix,
        offset_check_seconds=settings.kafka_offset_check_seconds,
        idempotent_producer=settings.kafka_idempotent_producer,
        publish_patience_seconds=settings.kafka_publish_patience_seconds,
    )


def token_keys(settings: Settings, services: Sequence[str], keyring: KeyRing) -> KeySource:
    """Where the services of this process find the identity's public keys: the identity's own key ring when
    it runs here (or, embedded, an ephemeral ring for a test without it), else its JWKS over HTTP."""
    if "identity" in services:
        return keyring
    if settings.identity_jwks_url:
        return JwksKeys(
            settings.identity_jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
        )
    if keyring.signer is not None:  # keys handed in by the caller (tests running a service without identity)
        return keyring
    if settings.mode == "embedded":
        keyring.replace(KeyRing.ephemeral().keys)
        return keyring
    raise ValueError(
        "distributed mode needs MINSHENG_IDENTITY_JWKS_URL (the identity service's "
        "/identity/.well-known/jwks.json) for a service without the identity service"
    )


def build_app(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    demo: bool = False,
    bus: EventBus | None = None,
    freeze_gc: bool = False,
    keyring: KeyRing | None = None,
) -> FastAPI:
    from minsheng.platform.app import create_root_app
    from minsheng.platform.auth import make_verifier

    """The ASGI app of a process: the services' HTTP APIs (roles ``all`` and ``web``), or, for a background
    role (``relay``, ``consumer``; one service), its runtime with only health and metrics endpoints."""
    specs = [load_spec(n) for n in services]
    client_id = "minsheng-" + "-".join(services) if len(services) == 1 else "minsheng"
    keyring = keyring or KeyRing()
    if not ROLE_PARTS[settings.role].http:
        from minsheng.platform.worker import create_worker_app

        if len(specs) != 1:
            raise ValueError(f"role {settings.role!r} runs one service, not {len(specs)}")
        bus = bus or make_bus(settings, f"{client_id}-{settings.role}")
        return create_worker_app(ServiceRuntime(specs[0], settings, bus, keyring=keyring), bus, freeze_gc=freeze_gc)
    verifier = make_verifier(token_keys(settings, services, keyring), settings)
    return create_root_app(
        specs,
        settings,
        bus or make_bus(settings, client_id),
        demo=demo,
        freeze_gc=freeze_gc,
        keyring=keyring,
        verifier=verifier,
    )
