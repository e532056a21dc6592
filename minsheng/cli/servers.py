"""Running Minsheng: every service in one process, one service alone, or the local distributed cluster."""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from minsheng import SERVICES
from minsheng.cli.common import service_names, settings_from_env
from minsheng.settings import Settings


def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite files live (default ./var).")] = None,
    demo: Annotated[bool, typer.Option(help="Load demo data (idempotent).")] = False,
) -> None:
    """Run every service in one process on one port (embedded mode: SQLite + in-process bus)."""
    import uvicorn

    from minsheng.platform.observability import configure_logging
    from minsheng.runner import build_app

    overrides: dict[str, Any] = {"mode": "embedded"}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = settings_from_env(**overrides)
    configure_logging(settings.log_level, settings.log_json)
    typer.echo(f"Minsheng on http://{host}:{port}/  (data in {settings.data_dir.resolve()})")
    uvicorn.run(
        build_app(settings, demo=demo, freeze_gc=True), host=host, port=port, log_config=None, proxy_headers=True
    )


class ServeRole(StrEnum):
    all = "all"
    web = "web"
    relay = "relay"
    consumer = "consumer"


def serve(
    service: Annotated[str, typer.Argument(help=f"One of {', '.join(SERVICES)}.")],
    host: str = "0.0.0.0",
    port: int = 8000,
    role: Annotated[
        ServeRole | None,
        typer.Option(
            help="What this process runs: all (default: API, relay, consumers, jobs), web (the HTTP API), relay "
            "(the outbox relay and the jobs) or consumer (the event consumers); relay and consumer answer only "
            "/healthz, /readyz and /metrics. Default: MINSHENG_ROLE, else all. See docs/scaling.md.",
            show_default=False,
        ),
    ] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo data on start (idempotent).")] = False,
) -> None:
    """Run one service alone, on PostgreSQL and Kafka from settings (distributed mode). Scale by running more
    replicas (each one process), not workers: the relay and consumers are per process. With ``--role`` the
    API, the relay and the consumers run (and scale) as separate processes."""
    import uvicorn

    from minsheng.platform.observability import configure_logging
    from minsheng.runner import build_app

    service_names(service)
    overrides: dict[str, Any] = {} if "MINSHENG_MODE" in os.environ else {"mode": "distributed"}
    if role is not None:
        overrides["role"] = role.value
    chosen = role.value if role is not None else os.environ.get("MINSHENG_ROLE", "all")
    if demo and chosen not in ("all", "web"):
        raise typer.BadParameter("the demo data is loaded by the web role (or all)", param_hint="--demo")
    settings = settings_from_env(**overrides)
    configure_logging(settings.log_level, settings.log_json)
    _database_ready_or_exit(settings, service)
    uvicorn.run(
        build_app(settings, [service], demo=demo, freeze_gc=True),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        ws="none",  # no service speaks WebSocket: uvicorn's default would import the websockets package (~1 MB RSS)
    )


def _database_ready_or_exit(settings: Settings, service: str) -> None:
    """Before serving: the service's PostgreSQL database exists (created when missing and the role may).
    A missing database that cannot be created — or, when this process is to migrate it, a server that does not
    answer — ends in one clear line and exit code 1, not a traceback from the middle of the start-up. Without
    ``MINSHENG_MIGRATE_ON_START`` a server that is not up yet is only a warning: the process starts and
    ``/readyz`` answers 503 until the database is there (no crash loop while PostgreSQL starts)."""
    from minsheng.platform.db import DatabaseUnavailable, ensure_database

    try:
        created = asyncio.run(ensure_database(settings.database_url_for(service)))
    except DatabaseUnavailable as exc:
        if not exc.missing and not settings.migrate_on_start:
            typer.echo(f"minsheng serve {service}: {exc}; starting anyway (not ready until it answers)", err=True)
            return
        typer.echo(f"minsheng serve {service}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if created:
        typer.echo(f"{service}: created database {created!r}", err=True)


def dev_cluster_cmd(
    port: Annotated[int, typer.Option(help="The gateway's port.")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="PostgreSQL and Kafka data, logs; kept between runs.")] = Path(
        "var/cluster"
    ),
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Load the demo data.")] = True,
    broker: Annotated[str, typer.Option(help="kafka (Apache Kafka) or tansu (memory only, quicker).")] = "kafka",
) -> None:
    """The distributed mode on this machine without Docker: PostgreSQL, Apache Kafka, every service as its own
    `minsheng serve` process and the nginx gateway. Prints the URLs; Ctrl-C stops everything."""
    import signal as signals
    import time

    from minsheng.localinfra.cluster import DevCluster, dev_cluster

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signals.signal(signals.SIGTERM, interrupted)
    cluster = DevCluster(
        data_dir=data_dir.resolve(),
        services=list(SERVICES),
        gateway_port=port,
        demo=demo,
        broker_kind=broker,
        say=lambda line: print(line, flush=True),
    )
    try:
        with dev_cluster(cluster):
            print(f"ready: {cluster.gateway}/ — Ctrl-C to stop", flush=True)
            while all(p.poll() is None for p in cluster.procs.values()):
                time.sleep(0.5)
            gone = [n for n, p in cluster.procs.items() if p.poll() is not None]
            print(f"exited: {', '.join(gone)} — stopping the rest (logs in {data_dir / 'logs'})", flush=True)
            raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
