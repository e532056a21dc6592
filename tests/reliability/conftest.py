"""Fixtures of the reliability suite: a broker and a PostgreSQL server of the test's own, which it may stop,
kill and start again without disturbing anyone else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from minsheng import SERVICES
from minsheng.platform.db import create_database_if_missing
from minsheng.settings import Settings
from tests.conftest import distributed_settings, embedded_settings
from tests.support.client import System, running_system
from tests.support.infra import LocalBroker, database_template, local_broker
from tests.support.pgserver import PrivatePostgres
from tests.support.tcpproxy import DurableBroker


@pytest.fixture
def own_broker() -> Iterator[LocalBroker]:
    """A broker of this test's own, which it may stop or wipe."""
    broker = local_broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def durable_broker() -> Iterator[DurableBroker]:
    """A broker this test may take down and bring back with its data (logs, consumer offsets)."""
    broker = DurableBroker()
    broker.open()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def on_durable_broker(tmp_path: Path, pg_template: str, durable_broker: DurableBroker) -> Callable[..., Settings]:
    """The distributed settings on this test's fresh databases and its durable broker: call with the settings
    the test changes (``on_durable_broker(kafka_topic_partitions=3)``)."""

    def settings(**overrides: Any) -> Settings:
        return distributed_settings(tmp_path, pg_template, durable_broker.bootstrap, **overrides)

    return settings


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def private_pg_template(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    template = database_template(private_pg.base_url)
    for name in SERVICES:
        await create_database_if_missing(template.replace("{service}", name))
    yield template


@pytest.fixture
async def demo_system(tmp_path: Path) -> AsyncIterator[System]:
    """The whole system, embedded, with the demo data loaded (objects in several communities and canteens)."""
    async with running_system(embedded_settings(tmp_path), demo=True) as s:
        yield s
