from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from minsheng import SERVICES
from minsheng.platform import ratelimit
from minsheng.platform.db import create_database_if_missing
from minsheng.platform.service import ServiceRuntime
from minsheng.runner import load_spec
from minsheng.settings import Settings
from tests.support.buses import RecordingBus
from tests.support.client import System, running_system
from tests.support.infra import LocalBroker, database_template, drop_databases, kafka_broker, postgres_server
from tests.support.objectstore import object_store_server  # noqa: F401  (a session fixture)

# Property tests are about the properties, not the machine's speed: a loaded CI machine must not fail them on
# Hypothesis' timing health checks or per-example deadlines.
settings.register_profile("minsheng", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("minsheng")

if os.environ.get("MINSHENG_TEST_KAFKA", "").lower() == "tansu":
    os.environ.setdefault("MINSHENG_KAFKA_IDEMPOTENT_PRODUCER", "false")  # Tansu has no idempotent producer
    os.environ.setdefault("MINSHENG_KAFKA_FETCH_MAX_WAIT_MS", "10")  # nor a long poll that ends on new data


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """The rate limiters' buckets are process-wide: each test starts with full ones (sign-ins of one test must
    not make the next one's answer 429)."""
    ratelimit.BUCKETS.clear()
    yield
    ratelimit.BUCKETS.clear()


def embedded_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        mode="embedded", data_dir=tmp_path, relay_poll_seconds=0.2, handler_retry_base_seconds=0.01, **overrides
    )


def distributed_settings(tmp_path: Path, database_url: str, kafka_bootstrap: str, **overrides: Any) -> Settings:
    """The distributed configuration (PostgreSQL + Kafka) with the tests' quick timings; one partition unless
    ``kafka_topic_partitions`` says otherwise."""
    return embedded_settings(tmp_path, database_url=database_url).model_copy(
        update={
            "mode": "distributed",
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_session_timeout_ms": 6000,
            "kafka_topic_partitions": 1,
            **overrides,
        }
    )


@pytest.fixture(scope="session")
async def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every service's SQLite database at its migrations' head, made once per run: a test's system starts from
    copies, so it does not run Alembic six times (the start then only checks the version tables)."""
    from minsheng.runner import migrate_service

    folder = tmp_path_factory.mktemp("migrated-sqlite")
    settings = embedded_settings(folder)
    for name in SERVICES:
        await migrate_service(settings, name)
    return folder


@pytest.fixture
async def system(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[System]:
    """The whole system in one process: SQLite files (copies of migrated ones) + the in-process bus."""
    for name in SERVICES:
        shutil.copyfile(migrated_sqlite / f"{name}.db", tmp_path / f"{name}.db")
    async with running_system(embedded_settings(tmp_path)) as s:
        yield s


# --- real infrastructure (integration tests) --------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL server URL without a database: MINSHENG_TEST_DATABASE_URL, the local server, or a private
    one started for the run."""
    with postgres_server() as url:
        _announce(request, f"PostgreSQL for this run: {make_url(url).render_as_string(hide_password=True)}")
        yield url


@pytest.fixture
async def pg_template(pg_base_url: str) -> AsyncIterator[str]:
    """A fresh ``{service}`` database URL template for one test; the databases are dropped afterwards."""
    template = database_template(pg_base_url)
    for name in SERVICES:
        await create_database_if_missing(template.replace("{service}", name))
    yield template
    await drop_databases(pg_base_url, template, SERVICES)


@contextlib.asynccontextmanager
async def alone_on_postgres(tmp_path: Path, pg_base_url: str, service: str) -> AsyncIterator[System]:
    """One service alone in the process, on a fresh PostgreSQL database of its own, created and dropped here
    (creating and dropping every service's database would multiply the cost of each test)."""
    template = database_template(pg_base_url)
    await create_database_if_missing(template.replace("{service}", service))
    try:
        async with running_system(embedded_settings(tmp_path, database_url=template), services=(service,)) as s:
            yield s
    finally:
        await drop_databases(pg_base_url, template, (service,))


@pytest.fixture
async def points_runtime(tmp_path: Path, pg_template: str) -> AsyncIterator[ServiceRuntime]:
    """The points service's database on PostgreSQL, migrated, with a recording bus and no relay or consumer
    running: for tests that drive the outbox relay themselves."""
    runtime = ServiceRuntime(load_spec("points"), embedded_settings(tmp_path, database_url=pg_template), RecordingBus())
    await runtime.migrate()
    yield runtime
    await runtime.db.dispose()


@pytest.fixture
async def pg_system(tmp_path: Path, pg_template: str) -> AsyncIterator[System]:
    """The whole system in one process on real PostgreSQL databases (one per service), in-process bus."""
    async with running_system(embedded_settings(tmp_path, database_url=pg_template)) as s:
        yield s


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> Iterator[tuple[str, LocalBroker | None]]:
    """A Kafka broker for the whole run: MINSHENG_TEST_KAFKA_BOOTSTRAP, else Apache Kafka on a free port
    (MINSHENG_TEST_KAFKA=tansu: Tansu). Yields (bootstrap, the local broker or None when external)."""
    with kafka_broker() as broker:
        name = broker[1].name if broker[1] is not None else "external cluster"
        _announce(request, f"Kafka for this run: {name} on {broker[0]}")
        yield broker


def _announce(request: pytest.FixtureRequest, line: str) -> None:
    """Into the test log even when output is captured: which servers the integration tests ran against. An xdist
    worker (``bin/test`` runs two, each with its own servers) says it on stderr, its stdout goes nowhere."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if worker:
            print(f"\n[infra {worker}] {line}", file=sys.stderr, flush=True)
        else:
            print(f"\n[infra] {line}", flush=True)


@pytest.fixture
async def kafka_system(
    tmp_path: Path, pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> AsyncIterator[System]:
    """The whole system in one process in the distributed configuration: PostgreSQL + the Kafka broker.
    Wait for cross-service effects with ``tests.support.infra.eventually`` (``settle`` is embedded-only)."""
    settings = distributed_settings(tmp_path, pg_template, kafka[0])
    async with running_system(settings) as s:
        yield s
