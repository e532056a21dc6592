"""What a bench run stands on: its own PostgreSQL databases (``msbench_<run>_<name>``, dropped afterwards), a
Kafka broker (Apache Kafka; Tansu with ``MINSHENG_TEST_KAFKA=tansu``), server processes (``minsheng serve
<service>`` and the bare baseline app) and the load generator process — plus RSS/CPU sampling of the servers
while load runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import make_url

from minsheng.localinfra.kafka import LocalBroker, local_broker
from minsheng.localinfra.ports import free_port
from minsheng.localinfra.postgres import postgres_server
from minsheng.localinfra.processes import stop_process, wait_answering
from minsheng.settings import Settings

FIELD_KEY = "bXNiZW5jaC1maWVsZC1rZXktMzItYnl0ZXMtbG9uZyE="  # 32 bytes, base64
ROOT = Path(__file__).absolute().parent.parent


@dataclass
class Server:
    """A server process under test."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: str
    idle_rss_mb: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def log_tail(self, n: int = 3000) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-n:]

    def stop(self) -> None:
        stop_process(self.proc)


class Sampler:
    """Samples RSS (max) and CPU time of server processes every 100 ms while load runs."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = list(servers)
        self.max_rss: dict[str, float] = {s.name: 0.0 for s in self.servers}
        self.cpu0 = {s.name: s.cpu_seconds() for s in self.servers}
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for s in self.servers:
                with contextlib.suppress(psutil.Error):
                    self.max_rss[s.name] = max(self.max_rss[s.name], s.rss_mb())
            self._stop.wait(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.servers:
            with contextlib.suppress(psutil.Error):
                self.cpu[s.name] = s.cpu_seconds() - self.cpu0[s.name]


def _in_thread(coro: Any) -> Any:
    """Run a coroutine to its end from sync code, even with an event loop running in this thread."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class BenchEnv:
    """One bench run's infrastructure. Use as a context manager: everything it made is removed on exit."""

    keep_logs: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    pg_base: str = ""
    kafka_bootstrap: str = ""
    servers: list[Server] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="msbench-")))
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _broker: LocalBroker | None = None
    _keyring: Any = None
    identity_port: int = field(default_factory=free_port)

    def __enter__(self) -> BenchEnv:
        self.pg_base = self._stack.enter_context(postgres_server())
        env_kafka = os.environ.get("MINSHENG_TEST_KAFKA_BOOTSTRAP")
        if env_kafka:
            self.kafka_bootstrap = env_kafka
        else:
            self._broker = local_broker()
            if not self._broker.durable:  # Tansu has no idempotent producer
                os.environ.setdefault("MINSHENG_KAFKA_IDEMPOTENT_PRODUCER", "false")
                os.environ.setdefault("MINSHENG_KAFKA_FETCH_MAX_WAIT_MS", "10")  # nor a long poll
            self._broker.start()
            self.kafka_bootstrap = self._broker.bootstrap
        return self

    def __exit__(self, *exc: object) -> None:
        for s in reversed(self.servers):
            s.stop()
        self.servers.clear()
        if self.databases:
            import asyncio

            asyncio.run(self.drop_databases(self.databases))
        if self._broker is not None:
            self._broker.cleanup()
        self._stack.close()
        if not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def broker_pid(self) -> int | None:
        """The broker's process (None for an external one, ``MINSHENG_TEST_KAFKA_BOOTSTRAP``)."""
        proc = self._broker.proc if self._broker is not None else None
        return proc.pid if proc is not None else None

    def restart_kafka(self) -> None:
        """A fresh, empty broker: no backlog from earlier figures."""
        if self._broker is not None:
            self._broker.wipe()
            self._broker.start()

    # --- databases -------------------------------------------------------------------------------------

    @property
    def template(self) -> str:
        """The ``{service}`` database URL template the service processes use."""
        return f"{self.pg_base}/msbench_{self.run_id}_{{service}}"

    def url_for(self, name: str) -> str:
        return self.template.replace("{service}", name)

    def dsn_for(self, name: str) -> str:
        """A plain ``postgresql://`` DSN (asyncpg) for a bench database."""
        return make_url(self.url_for(name)).set(drivername="postgresql").render_as_string(hide_password=False)

    async def create_database(self, name: str) -> str:
        from minsheng.platform.db import create_database_if_missing

        url = self.url_for(name)
        await create_database_if_missing(url)
        db = make_url(url).database
        assert db is not None
        if db not in self.databases:
            self.databases.append(db)
        return url

    async def drop_databases(self, names: Sequence[str]) -> None:
        import asyncpg

        url = make_url(self.pg_base)
        conn = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
        )
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def migrate(self, service: str, database: str | None = None) -> str:
        """Create (if needed) and migrate ``database`` (default: the service's own) to the service's schema."""
        from minsheng.platform.db import Database
        from minsheng.platform.migrations import upgrade
        from minsheng.runner import load_spec

        url = await self.create_database(database or service)
        spec = load_spec(service)
        db = Database(url, spec.tables, pool_size=1)
        try:
            await upgrade(db, service, spec.migrations_dir)
        finally:
            await db.dispose()
        return url

    # --- settings and tokens ---------------------------------------------------------------------------

    def settings(self) -> Settings:
        return Settings(
            mode="distributed",
            database_url=self.template,
            kafka_bootstrap=self.kafka_bootstrap,
            field_encryption_key=FIELD_KEY,
            identity_jwks_url=self.jwks_url,
        )  # type: ignore[arg-type]

    def token(self, roles: Sequence[str], sub: str, scopes: Sequence[str] = ()) -> str:
        # Signed with the identity's key store (the services verify against its JWKS), as `minsheng token`.
        from minsheng.platform.auth import mint_token
        from services.identity.keys import key_ring_blocking

        if self._keyring is None:  # read once (a few hundred ms); each token then costs one signature
            self._keyring = key_ring_blocking(self.settings())
        return mint_token(self._keyring, self.settings(), sub, roles, scopes, ttl_seconds=6 * 3600, amr=["dev"])

    def service_env(self, **extra: str) -> dict[str, str]:
        return {
            "MINSHENG_MODE": "distributed",
            "MINSHENG_DATABASE_URL": self.template,
            "MINSHENG_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "MINSHENG_KAFKA_TOPIC_PARTITIONS": "3",  # the production default
            "MINSHENG_IDENTITY_JWKS_URL": self.jwks_url,
            "MINSHENG_FIELD_ENCRYPTION_KEY": FIELD_KEY,
            # The services' default (INFO: one access-log line per request, as deployed); the baseline app
            # runs at the same level but has no access log of its own.
            "MINSHENG_LOG_LEVEL": os.environ.get("MINSHENG_LOG_LEVEL", "INFO"),
            # The points service's per-rider token bucket (1/s, burst 20) would answer 429 to a load test
            # from a few riders: lifted, so the figure measures the write path, not the limiter.
            "MINSHENG_POINTS_RIDER_RATE_PER_SECOND": "1000000",
            "MINSHENG_POINTS_RIDER_BURST": "1000000",
            "MINSHENG_POINTS_MERCHANT_RATE_PER_SECOND": "1000000",
            "MINSHENG_POINTS_MERCHANT_BURST": "1000000",
            **extra,
        }

    # --- processes -------------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], port: int) -> Server:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        server = Server(name, port, proc, str(log))
        self.servers.append(server)
        return server

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.identity_port}/identity/.well-known/jwks.json"

    def start_service(self, service: str, **extra_env: str) -> Server:
        if service != "identity" and not any(s.name == "identity" for s in self.servers):
            self.wait_ready(self.start_service("identity"))  # the services verify tokens against its keys
        if service == "identity":
            _in_thread(self.migrate("identity"))
        port = self.identity_port if service == "identity" else free_port()
        return self._spawn(
            service,
            [sys.executable, "-m", "minsheng.cli", "serve", service, "--host", "127.0.0.1", "--port", str(port)],
            self.service_env(**extra_env),
            port,
        )

    def start_baseline(self, config: dict[str, Any], name: str = "bare") -> Server:
        port = free_port()
        path = self.workdir / f"{name}-config.json"
        path.write_text(json.dumps(config))
        return self._spawn(
            name,
            [sys.executable, "-m", "bench.baseline_app", "--port", str(port)],
            {"BENCH_BARE_CONFIG": str(path), "MINSHENG_LOG_LEVEL": os.environ.get("MINSHENG_LOG_LEVEL", "INFO")},
            port,
        )

    def wait_ready(self, server: Server, path: str = "/readyz", timeout: float = 90.0) -> None:
        wait_answering(server.proc, server.name, server.url + path, server.log_tail, timeout)

    def stop_server(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def run_load(self, server: Server, spec: dict[str, Any], watch: Sequence[Server] = ()) -> dict[str, Any]:
        """Run the load generator in its own process against ``server``; sample the servers meanwhile."""
        spec = {"host": "127.0.0.1", "port": server.port, **spec}
        spec_path = self.workdir / f"spec-{uuid.uuid4().hex[:8]}.json"
        out_path = spec_path.with_suffix(".out.json")
        spec_path.write_text(json.dumps(spec))
        watched = [server, *[w for w in watch if w is not server]]
        with Sampler(watched) as sampler:
            subprocess.run(
                [sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path)],
                check=True,
                cwd=ROOT,
                timeout=spec.get("warmup", 1) + spec["duration"] + 120,
            )
        result: dict[str, Any] = json.loads(out_path.read_text())
        n = result["requests"] or 1
        result["server_cpu_us_per_request"] = (
            sampler.cpu.get(server.name, 0.0)
            / n
            * 1e6
            * (result["duration_s"] / (result["duration_s"] + spec.get("warmup", 1)))
        )
        result["rss_mb_max"] = {k: round(v, 1) for k, v in sampler.max_rss.items()}
        return result


def run_python(module: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Any:
    """Run ``python -m module args`` in its own process; it prints one JSON document last."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def bench_env(**kw: Any) -> Iterator[BenchEnv]:
    with BenchEnv(**kw) as env:
        yield env
