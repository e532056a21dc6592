"""``minsheng dev-cluster``: the distributed mode on one machine without Docker.

PostgreSQL and Apache Kafka from :mod:`minsheng.localinfra`, each service as its own ``minsheng serve`` process
(migrations and topics first, as the compose jobs do), and the nginx gateway with the compose template in front,
so every URL is the one a deployment has. Data lives under ``--data-dir`` and survives a restart; Ctrl-C stops
everything.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minsheng.localinfra.gateway import nginx_binary, nginx_main_conf, render_gateway, upstream_variables
from minsheng.localinfra.kafka import ApacheKafka, LocalBroker, Tansu
from minsheng.localinfra.ports import claim_port, free_port
from minsheng.localinfra.postgres import PostgresServer
from minsheng.localinfra.processes import wait_answering


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the dev-cluster process dies, even by SIGKILL (Linux), so no
    service outlives it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class DevCluster:
    data_dir: Path
    services: Sequence[str]
    gateway_port: int = 8080
    demo: bool = False
    broker_kind: str = "kafka"
    say: Callable[[str], None] = print
    postgres: PostgresServer | None = None
    broker: LocalBroker | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        """The services' environment: what compose gives them, with local addresses; secrets made once and kept
        in ``<data-dir>/cluster.env``."""
        assert self.postgres is not None and self.broker is not None
        saved = self.data_dir / "cluster.env"
        if not saved.exists():
            saved.write_text(f"MINSHENG_FIELD_ENCRYPTION_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}\n")
            saved.chmod(0o600)
        env = dict(line.split("=", 1) for line in saved.read_text().splitlines() if "=" in line)
        env.update(
            {
                "MINSHENG_MODE": "distributed",
                "MINSHENG_DATABASE_URL": f"{self.postgres.base_url}/minsheng_{{service}}",
                "MINSHENG_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "MINSHENG_KAFKA_IDEMPOTENT_PRODUCER": "true" if self.broker.durable else "false",
                # Tansu ends a fetch only when its wait is over (Apache Kafka as soon as a record arrives)
                "MINSHENG_KAFKA_FETCH_MAX_WAIT_MS": "500" if self.broker.durable else "10",
                # a development cluster: WeChat sign-in through the local stand-in
                "MINSHENG_IDENTITY_WECHAT_STANDIN": "true",
            }
        )
        if "identity" in self.ports:  # the other services verify tokens against the identity's keys
            env["MINSHENG_IDENTITY_JWKS_URL"] = (
                f"http://127.0.0.1:{self.ports['identity']}/identity/.well-known/jwks.json"
            )
        return env

    def start(self) -> None:
        claim_port(self.gateway_port)  # PostgreSQL, Kafka and the services are given other ports
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(self.data_dir.stat().st_mode | 0o001)  # PostgreSQL's system user passes through
        pg_root = self.data_dir / "postgres"
        fresh = not (pg_root / "data").exists()
        pg_root.mkdir(exist_ok=True)
        self.postgres = PostgresServer(root=pg_root)
        if fresh:
            self.postgres.init()
        self.postgres.start()
        self.say(f"postgres  {self.postgres.version} on 127.0.0.1:{self.postgres.port} ({pg_root})")
        if self.broker_kind == "tansu":
            self.broker = Tansu()
        else:
            (self.data_dir / "kafka").mkdir(exist_ok=True)
            self.broker = ApacheKafka(root=self.data_dir / "kafka")
        self.broker.start()
        self.say(f"kafka     {self.broker.name} on {self.broker.bootstrap}")
        self.ports = {name: free_port() for name in self.services}
        env = {**os.environ, **self.env()}
        for step in (["migrate"], ["topics", "create"]):  # the compose jobs
            done = subprocess.run(
                [sys.executable, "-m", "minsheng.cli", *step], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"minsheng {' '.join(step)} failed:\n{done.stdout}\n{done.stderr}")
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name in self.services:
            port = self.ports[name]
            argv = [sys.executable, "-m", "minsheng.cli", "serve", name, "--host", "127.0.0.1", "--port", str(port)]
            if self.demo:
                argv.append("--demo")
            with open(logs / f"{name}.log", "ab") as out:
                self.procs[name] = subprocess.Popen(
                    argv,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        for name, port in self.ports.items():
            self._wait_ready(name, f"http://127.0.0.1:{port}/readyz", logs / f"{name}.log")
            self.say(f"{name:<9} http://127.0.0.1:{port}  (log: {logs / (name + '.log')})")
        self._start_gateway()

    def _wait_ready(self, name: str, url: str, log: Path, timeout: float = 120.0) -> None:
        wait_answering(self.procs[name], name, url, lambda: _tail(log, 3000), timeout)

    def _start_gateway(self) -> None:
        nginx = nginx_binary()
        if nginx is None:
            self.say("gateway   nginx is not installed: call the services on their own ports above")
            return
        workdir = self.data_dir / "nginx"
        workdir.mkdir(exist_ok=True)
        rendered = workdir / "default.conf"
        rendered.write_text(
            render_gateway(upstream_variables(self.gateway_port, {n: f"127.0.0.1:{p}" for n, p in self.ports.items()}))
        )
        with open(workdir / "nginx.out", "ab") as out:
            self.procs["gateway"] = subprocess.Popen(
                [nginx, "-p", str(workdir), "-c", str(nginx_main_conf(workdir, rendered))],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        # Its own /healthz, not just an open port: whatever took the port would pass for it.
        wait_answering(
            self.procs["gateway"],
            "gateway",
            f"{self.gateway}/healthz",
            lambda: "".join(_tail(workdir / name) for name in ("nginx.out", "error.log")),
            timeout=15,
            answered=lambda response: response.status_code == 200 and '"component":"gateway"' in response.text,
        )
        self.say(f"gateway   {self.gateway}/  (every service under /<service>/, docs at /<service>/docs)")

    def stop(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.say(f"stopped   {name}")
        self.procs.clear()
        if self.broker is not None:
            self.broker.stop()
            self.say("stopped   kafka")
        if self.postgres is not None:
            self.postgres.stop()
            self.say("stopped   postgres")


@contextlib.contextmanager
def dev_cluster(cluster: DevCluster) -> Iterator[DevCluster]:
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
