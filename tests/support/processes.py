"""Running services as separate ``minsheng serve`` processes, the way the distributed mode deploys them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from minsheng.localinfra.processes import stop_process, wait_answering
from minsheng.platform.tasks import within
from minsheng.platform.tokens import KeyRing
from minsheng.settings import Settings
from tests.support.infra import free_port


async def run_module(module: str, *args: str, env: dict[str, str], seconds: float) -> tuple[int, str]:
    """``python -m module args`` as an operator runs it (a CLI, a job), in its own process with exactly ``env``:
    its exit code and its output (stdout and stderr together). Killed if it outlives ``seconds``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await within(seconds, proc.communicate())
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, out.decode()


@dataclass
class ServiceProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


def distributed_env(database_template: str, bootstrap: str, **extra: str) -> dict[str, str]:
    """The services find the identity's keys at a port chosen here (``start_service("identity")`` uses it).
    Topics and consumer groups get a prefix of their own: the run's broker is shared, and a new consumer group
    starts at the earliest offset, so without it a test would also read what earlier tests published."""
    identity_port = free_port()
    return {
        "MINSHENG_KAFKA_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        "MINSHENG_MODE": "distributed",
        "MINSHENG_DATABASE_URL": database_template,
        "MINSHENG_KAFKA_BOOTSTRAP": bootstrap,
        "MINSHENG_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "MINSHENG_KAFKA_TOPIC_PARTITIONS": "1",
        "MINSHENG_IDENTITY_JWKS_URL": f"http://127.0.0.1:{identity_port}/identity/.well-known/jwks.json",
        "MINSHENG_TEST_IDENTITY_PORT": str(identity_port),
        "MINSHENG_IDENTITY_WECHAT_STANDIN": "true",
        "MINSHENG_FIELD_ENCRYPTION_KEY": "dGVzdC1maWVsZC1rZXktMzItYnl0ZXMtbG9uZy4uLi4=",
        "MINSHENG_RELAY_POLL_SECONDS": "0.2",
        "MINSHENG_HANDLER_RETRY_BASE_SECONDS": "0.05",
        **extra,
    }


def start_service(name: str, env: dict[str, str], port: int | None = None) -> ServiceProcess:
    if name == "identity" and port is None and env.get("MINSHENG_TEST_IDENTITY_PORT"):
        port = int(env["MINSHENG_TEST_IDENTITY_PORT"])
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"minsheng-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsheng.cli", "serve", name, "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return ServiceProcess(name, port, proc, log.name, env)


def wait_ready(service: ServiceProcess, timeout: float = 60.0, *, probe: str = "/readyz") -> None:
    """Until ``probe`` answers 200: ``/readyz`` (the default) when the service is ready, ``/healthz`` as soon as
    it is up and answering, even if the bus is not reachable."""
    wait_answering(service.proc, service.name, service.url + probe, service.log, timeout)


def stop(service: ServiceProcess, *, kill: bool = False) -> None:
    if kill:  # a crash
        service.proc.kill()
        service.proc.wait()
    else:
        stop_process(service.proc)


@contextlib.contextmanager
def services_running(names: Sequence[str], env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    names = sorted(names, key=lambda n: n != "identity")  # the identity first: the others fetch its keys
    started = {n: start_service(n, env) for n in names}
    try:
        for s in started.values():
            wait_ready(s)
        yield started
    finally:
        for s in started.values():
            stop(s)


def process_settings(env: dict[str, str]) -> Settings:
    """The settings the processes run with (for minting development tokens from their key store, and naming
    their topics)."""
    return Settings(
        mode="distributed",
        database_url=env["MINSHENG_DATABASE_URL"],
        field_encryption_key=env["MINSHENG_FIELD_ENCRYPTION_KEY"],  # type: ignore[arg-type]
        identity_jwks_url=env["MINSHENG_IDENTITY_JWKS_URL"],
        kafka_prefix=env.get("MINSHENG_KAFKA_PREFIX", ""),
    )


_rings: dict[str, KeyRing] = {}


def dev_token(
    settings: Settings, sub: str, roles: Sequence[str], scopes: Sequence[str] = (), *, ttl_seconds: int = 6 * 3600
) -> str:
    """``minsheng token`` against the identity's key store; callable from sync code and from a running loop.
    The keys are read once per database (a few hundred ms); each token then costs a signature (~0.1 ms)."""
    from minsheng.platform.auth import mint_token
    from services.identity.keys import key_ring_blocking

    url = settings.database_url_for("identity")
    if url not in _rings:
        _rings[url] = key_ring_blocking(settings)
    return mint_token(_rings[url], settings, sub, roles, scopes, ttl_seconds=ttl_seconds, amr=["dev"])
