"""The compose deployment as local processes (package-scoped: started once for the smoke and observability
tests). Everything comes from docker-compose.yml: which minsheng jobs and services exist, their order
(depends_on), commands and environment, and the gateway's template and environment. Secrets come from
deploy/ops/init-env.sh, the databases and roles from deploy/postgres/init/*.sh, topics from the topic job."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from minsheng import SERVICES
from minsheng.localinfra.processes import wait_answering
from minsheng.settings import Settings
from tests.deploy.compose_local import (
    ROOT,
    Proc,
    depends_on,
    env_list,
    is_minsheng,
    load_compose,
    local_argv,
    nginx_binary,
    nginx_main_conf,
    read_env_file,
    render_gateway,
    start_order,
    with_option,
)
from tests.support.infra import database_template, drop_databases, free_port, local_broker, wait_port
from tests.support.objectstore import ObjectStoreServer
from tests.support.processes import dev_token

COMPOSE_DB_PATTERN = "minsheng_{}"  # the database names in docker-compose.yml / the init script's default


@dataclass
class Deployment:
    gateway: str
    compose: dict[str, Any]
    env: dict[str, str]
    procs: dict[str, Proc]
    jobs: dict[str, subprocess.CompletedProcess[str]]
    database_urls: dict[str, str]
    nginx: Proc

    def token(self, role: str, sub: str, scopes: tuple[str, ...] | list[str] = ()) -> str:
        """``minsheng token`` against the identity service's key store (its database)."""
        settings = Settings(
            mode="distributed",
            database_url=self.database_urls["identity"],
            field_encryption_key=SecretStr(self.env["MINSHENG_FIELD_ENCRYPTION_KEY"]),
            identity_jwks_url="http://unused",
        )
        return dev_token(settings, sub, [role], list(scopes))

    def auth(self, role: str, sub: str, scopes: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, sub, scopes)}"}


def generated_env(tmp: Path) -> dict[str, str]:
    """What an operator does first: ``deploy/ops/init-env.sh > .env``."""
    out = subprocess.run(["bash", str(ROOT / "deploy/ops/init-env.sh")], capture_output=True, text=True, check=True)
    path = tmp / ".env"
    path.write_text(out.stdout)
    return read_env_file(path)


def create_databases(base_url: str, pattern: str, env: dict[str, str]) -> bool:
    """Run the compose init script against the local server. False when psql is missing (then the databases
    are created by `minsheng migrate` as the server's superuser instead)."""
    if shutil.which("psql") is None:
        return False
    url = make_url(base_url)
    script_env = {
        **os.environ,
        **env,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": "postgres",
        "MINSHENG_DB_NAME_PATTERN": pattern,
    }
    if url.password:
        script_env["PGPASSWORD"] = url.password
    for script in sorted((ROOT / "deploy/postgres/init").glob("*.sh")):
        subprocess.run(["bash", str(script)], env=script_env, check=True, capture_output=True, text=True)
    return True


def wait_ready(proc: Proc, url: str, timeout: float = 60.0) -> None:
    assert proc.proc is not None
    wait_answering(proc.proc, proc.name, url, lambda: proc.log()[-4000:], timeout)


@pytest.fixture(scope="package")
def deployment(pg_base_url: str, object_store_server: ObjectStoreServer) -> Iterator[Deployment]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed: run deploy/ci/ensure-tools.sh (as root) first")
    tmp = Path(tempfile.mkdtemp(prefix="minsheng-compose-"))
    env = generated_env(tmp)
    compose = load_compose(env)
    services: dict[str, Any] = compose["services"]

    template = database_template(pg_base_url)  # .../mstest_<hex>_{service}
    test_db_pattern = make_url(template).database.replace("{service}", "%s")  # type: ignore[union-attr]
    own_roles = create_databases(pg_base_url, test_db_pattern, env)
    pg = make_url(pg_base_url)

    # A broker of its own: the topics job must find a cluster as `docker compose up` does, without topics.
    external_kafka = os.environ.get("MINSHENG_TEST_KAFKA_BOOTSTRAP")
    broker = None if external_kafka else local_broker()
    if broker is not None:
        broker.start()
    bootstrap = external_kafka or broker.bootstrap  # type: ignore[union-attr]

    database_urls: dict[str, str] = {}

    def local_env(name: str, compose_env: dict[str, str]) -> dict[str, str]:
        """Only addresses change: postgres:5432, kafka:9092 and the database names."""
        out = dict(compose_env)
        if "MINSHENG_DATABASE_URL" in out:
            url = make_url(out["MINSHENG_DATABASE_URL"])
            assert url.host == "postgres", f"{name}: database host {url.host}"
            service = (url.database or "").removeprefix(COMPOSE_DB_PATTERN.format(""))
            db = test_db_pattern % service
            url = url.set(host=pg.host, port=pg.port, database=db)
            if not own_roles:  # no init script run: connect as the server's own user
                url = url.set(username=pg.username, password=pg.password)
            out["MINSHENG_DATABASE_URL"] = url.render_as_string(hide_password=False)
            database_urls[service] = out["MINSHENG_DATABASE_URL"]
        if out.get("MINSHENG_IDENTITY_JWKS_URL", "").startswith("http://identity:8000/") and "identity" in procs:
            out["MINSHENG_IDENTITY_JWKS_URL"] = out["MINSHENG_IDENTITY_JWKS_URL"].replace(
                "http://identity:8000", f"http://127.0.0.1:{procs['identity'].port}"
            )
        if "MINSHENG_KAFKA_BOOTSTRAP" in out:
            assert out["MINSHENG_KAFKA_BOOTSTRAP"] == "kafka:9092"
            out["MINSHENG_KAFKA_BOOTSTRAP"] = bootstrap
        if "MINSHENG_STORAGE_S3_ENDPOINT" in out:  # the compose file's SeaweedFS → the test run's
            assert out["MINSHENG_STORAGE_S3_ENDPOINT"] == "http://seaweedfs:8333"
            out.update({f"MINSHENG_{k.upper()}": str(v) for k, v in object_store_server.settings("minsheng").items()})
            out["MINSHENG_STORAGE_S3_PUBLIC_ENDPOINT"] = object_store_server.endpoint
        return out

    minsheng = [n for n, s in services.items() if is_minsheng(s) and not s.get("profiles")]
    procs: dict[str, Proc] = {}
    jobs: dict[str, subprocess.CompletedProcess[str]] = {}
    nginx: Proc | None = None
    try:
        # Like `docker compose up`: everything whose dependencies are done starts together (jobs in parallel,
        # then the services once their jobs completed successfully).
        remaining = start_order(services, minsheng)
        done: set[str] = set()
        while remaining:
            wave = [n for n in remaining if all(dep in done for dep in depends_on(services[n]) if dep in minsheng)]
            assert wave, f"dependencies cannot be satisfied: {remaining}"
            running: dict[str, subprocess.Popen[str]] = {}
            for name in wave:
                spec = services[name]
                for dep, condition in depends_on(spec).items():
                    if dep in minsheng:
                        assert condition in ("service_completed_successfully", "service_healthy"), (name, dep)
                argv = local_argv(list(spec["command"]))
                penv = local_env(name, env_list(spec))
                if spec.get("restart") == "no":  # a one-shot job: must succeed before its dependants start
                    running[name] = subprocess.Popen(
                        argv,
                        env={**os.environ, **penv},
                        cwd=ROOT,
                        text=True,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    continue
                health = " ".join(spec["healthcheck"]["test"])
                assert "/readyz" in health, f"{name}: the compose healthcheck should probe /readyz"
                port = free_port()
                argv = with_option(with_option(argv, "--port", str(port)), "--host", "127.0.0.1")
                procs[name] = Proc(name, argv, penv, port=port)
                procs[name].start()
            for name, job in running.items():
                out, err = job.communicate(timeout=180)
                jobs[name] = subprocess.CompletedProcess(job.args, job.returncode, out, err)
                assert job.returncode == 0, f"{name} failed:\n{out}\n{err}"
            for name in wave:
                if name in procs:
                    wait_ready(procs[name], f"http://127.0.0.1:{procs[name].port}/readyz")
            done.update(wave)
            remaining = [n for n in remaining if n not in done]

        gateway = services["gateway"]
        assert set(depends_on(gateway)) == set(SERVICES), "the gateway waits for every service's web role"
        listen = free_port()
        variables = {}
        for key, value in env_list(gateway).items():
            host, _, port_s = value.partition(":")
            if key == "GATEWAY_LISTEN_PORT":
                variables[key] = str(listen)
            elif host in procs:
                assert port_s == "8000", f"{key} should point at the service port"
                variables[key] = f"127.0.0.1:{procs[host].port}"
            else:
                variables[key] = value
        workdir = tmp / "nginx"
        workdir.mkdir()
        rendered = workdir / "default.conf"
        rendered.write_text(render_gateway(variables))
        nginx = Proc(
            "gateway",
            [nginx_binary() or "nginx", "-p", str(workdir), "-c", str(nginx_main_conf(workdir, rendered))],
            {},
        )
        nginx.start()
        wait_port("127.0.0.1", listen, timeout=15)
        wait_ready(nginx, f"http://127.0.0.1:{listen}/healthz", timeout=15)
        yield Deployment(
            gateway=f"http://127.0.0.1:{listen}",
            compose=compose,
            env=env,
            procs=procs,
            jobs=jobs,
            database_urls=database_urls,
            nginx=nginx,
        )
    finally:
        if nginx is not None:
            nginx.stop()
        for proc in procs.values():
            proc.stop()
        if broker is not None:
            broker.cleanup()
        import asyncio

        asyncio.run(drop_databases(pg_base_url, template, SERVICES))
        shutil.rmtree(tmp, ignore_errors=True)
