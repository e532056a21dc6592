"""The ``minsheng`` command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from minsheng import SERVICES
from minsheng.settings import Settings
from minsheng.topics import cli as topics_cli

app = typer.Typer(help="Minsheng 民生 — grassroots-governance backend.", no_args_is_help=True)
outbox_app = typer.Typer(help="The transactional outbox.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: events a handler kept failing on.", no_args_is_help=True)
contracts_app = typer.Typer(help="The published event contracts.", no_args_is_help=True)
notify_app = typer.Typer(help="The notify service's deliveries.", no_args_is_help=True)
admin_app = typer.Typer(help="Staff accounts (the identity service).", no_args_is_help=True)
keys_app = typer.Typer(
    help="Keys: the identity's token-signing keys and the field keys of personal data at rest.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlq_app, name="dlq")
app.add_typer(contracts_app, name="contracts")
app.add_typer(notify_app, name="notify")
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(topics_cli, name="topics")
photos_app = typer.Typer(help="Uploaded photos (docs/photos.md).", no_args_is_help=True)
app.add_typer(photos_app, name="photos")

ServiceArg = Annotated[str | None, typer.Argument(help=f"One of {', '.join(SERVICES)}; all when omitted.")]


def _settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def _services(name: str | None) -> list[str]:
    if name is None:
        return list(SERVICES)
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return [name]


@app.command()
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
    settings = _settings(**overrides)
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


@app.command()
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

    _services(service)
    overrides: dict[str, Any] = {} if "MINSHENG_MODE" in os.environ else {"mode": "distributed"}
    if role is not None:
        overrides["role"] = role.value
    chosen = role.value if role is not None else os.environ.get("MINSHENG_ROLE", "all")
    if demo and chosen not in ("all", "web"):
        raise typer.BadParameter("the demo data is loaded by the web role (or all)", param_hint="--demo")
    settings = _settings(**overrides)
    configure_logging(settings.log_level, settings.log_json)
    _database_ready_or_exit(settings, service)
    uvicorn.run(
        build_app(settings, [service], demo=demo, freeze_gc=True),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
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


@app.command()
def migrate(service: ServiceArg = None) -> None:
    """Apply each service's migrations to its database (creating a PostgreSQL database if missing)."""
    from minsheng.platform.db import Database, create_database_if_missing
    from minsheng.platform.migrations import upgrade
    from minsheng.runner import load_spec

    settings = _settings()

    async def go() -> None:
        for name in _services(service):
            spec = load_spec(name)
            url = settings.database_url_for(name)
            await create_database_if_missing(url)
            db = Database(url, spec.tables)
            try:
                await upgrade(db, name, spec.migrations_dir, settings=settings)
            finally:
                await db.dispose()
            typer.echo(f"{name}: migrated ({db.url.render_as_string(hide_password=True)})")

    asyncio.run(go())


@app.command()
def makemigrations(service: str, message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """Autogenerate a new migration for a service from its models (developers)."""
    from alembic import command

    from minsheng.platform.db import Database
    from minsheng.platform.migrations import alembic_config, upgrade
    from minsheng.runner import load_spec

    spec = load_spec(_services(service)[0])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/{service}.db"
        db = Database(url, spec.tables)

        async def go() -> None:
            await upgrade(db, service, spec.migrations_dir)

            def revise(sync_conn: Any) -> None:
                cfg = alembic_config(service, spec.migrations_dir)
                cfg.attributes["connection"] = sync_conn
                existing = sorted(spec.migrations_dir.glob("versions/[0-9][0-9][0-9][0-9]_*.py"))
                rev_id = f"{len(existing) + 1:04d}"  # readable, ordered file names: 0001_initial_schema.py
                command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)

            async with db.engine.begin() as conn:
                await conn.run_sync(revise)
            await db.dispose()

        asyncio.run(go())


@app.command()
def token(
    role: Annotated[
        list[str],
        typer.Option("--role", "-r", help="resident, grid_worker, rider, merchant, staff, admin; repeatable."),
    ],
    sub: Annotated[str, typer.Option(help="The subject (user id).")] = "dev-user",
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="e.g. community:yunxing, compound:yuntaiyuan, *; repeatable."),
    ] = None,
    name: str | None = None,
    ttl: Annotated[int, typer.Option(help="Seconds until it expires.")] = 3600 * 12,
) -> None:
    """Mint a development token, signed with the identity service's key store (its database): for
    development and tests. Real clients sign in (POST /identity/wechat/login, /identity/staff/login)."""
    from minsheng.platform.auth import Role
    from services.identity.keys import dev_token

    for r in role:
        if r not in Role.__members__:
            raise typer.BadParameter(f"unknown role {r!r}", param_hint="--role")
    for value in scope or []:
        # A token's scope claim is one space-separated string: "community:x *" would be read as two scopes,
        # one of them district-wide.
        if not value or any(c.isspace() for c in value) or "\x00" in value:
            raise typer.BadParameter(
                f"{value!r}: a scope value may not be empty or contain whitespace; repeat --scope for several",
                param_hint="--scope",
            )
    typer.echo(asyncio.run(dev_token(_settings(), sub, role, scope or [], name=name, ttl_seconds=ttl)))


@admin_app.command("create")
def admin_create(
    username: str,
    password: Annotated[str | None, typer.Option(help="Default: read from MINSHENG_ADMIN_PASSWORD or prompt.")] = None,
    display_name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Bootstrap an admin account (user name + password + a TOTP authenticator, printed once)."""
    from services.identity.cli import create_admin

    password = (
        password
        or os.environ.get("MINSHENG_ADMIN_PASSWORD")
        or typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    try:
        out = asyncio.run(create_admin(_settings(), username, password, display_name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; the current one stops signing and is retired after the longest access-token
    lifetime (both are published until then)."""
    from services.identity.cli import rotate_keys

    typer.echo(json.dumps(asyncio.run(rotate_keys(_settings())), indent=2))


@keys_app.command("list")
def keys_list() -> None:
    """The key store: kid, created, retiring (no private material)."""
    from services.identity.cli import list_keys

    for line in asyncio.run(list_keys(_settings())):
        typer.echo(json.dumps(line))


def _runtime(name: str, settings: Settings) -> Any:
    from minsheng.platform.bus.memory import InProcessBus
    from minsheng.platform.service import ServiceRuntime
    from minsheng.runner import load_spec

    return ServiceRuntime(load_spec(name), settings, InProcessBus())


@outbox_app.command("status")
def outbox_status_cmd(service: ServiceArg = None) -> None:
    """Pending and sent events per service, the oldest pending one's age, and the last publish error."""
    from minsheng.platform.outbox import outbox_status

    settings = _settings()

    async def go() -> None:
        for name in _services(service):
            rt = _runtime(name, settings)
            try:
                s = await outbox_status(rt.db)
            finally:
                await rt.db.dispose()
            line = (
                f"{name:8} pending={s.pending} sent={s.sent} "
                f"oldest_pending_age={s.oldest_pending_age_seconds:.1f}s max_attempts={s.max_attempts}"
            )
            typer.echo(line + (f" last_error={s.last_error!r}" if s.last_error else ""))

    asyncio.run(go())


def _since(value: str) -> datetime:
    """An ISO 8601 time (a time without offset is UTC) or an age such as ``90m``, ``6h``, ``2d``."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give an ISO 8601 time (2026-12-06T03:00Z) or an age (90m, 6h, 2d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@outbox_app.command("resend")
def outbox_resend_cmd(
    since: Annotated[
        str,
        typer.Option(
            help="Re-send events the broker acknowledged at or after this time: ISO "
            "8601 (2026-12-06T03:00Z) or an age (90m, 6h, 2d)."
        ),
    ],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Repeatable; all services when omitted.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="… and before this time (default: now).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count them.")] = False,
) -> None:
    """Publish acknowledged events again, after the broker lost data (restarted empty, a log truncated).
    The rows go back to pending; the running relays publish them in their original order, and the consumers'
    inboxes drop every event they had already handled. Only rows younger than MINSHENG_OUTBOX_RETENTION_HOURS
    are still there to re-send."""
    from minsheng.platform.outbox import resend_since

    settings = _settings()
    start = _since(since)
    end = _since(until) if until else None
    names = [n for name in service or [None] for n in _services(name)]  # type: ignore[list-item]

    async def go() -> None:
        for name in names:
            rt = _runtime(name, settings)
            try:
                count = await resend_since(rt.db, start, until=end, dry_run=dry_run)
            finally:
                await rt.db.dispose()
            verb = "would re-send" if dry_run else "re-sending"
            typer.echo(
                f"{name:8} {verb} {count} events acknowledged since {start.isoformat(timespec='seconds')}"
                + (f" until {end.isoformat(timespec='seconds')}" if end else "")
            )

    asyncio.run(go())


@dlq_app.command("list")
def dlq_list(service: ServiceArg = None, all_: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Dead letters not yet replayed (``--all`` includes replayed and discarded ones)."""
    import sqlalchemy as sa

    from minsheng.platform.consumer import is_discarded

    settings = _settings()

    async def go() -> None:
        for name in _services(service):
            rt = _runtime(name, settings)
            t = rt.db.tables.dead_letters
            query = sa.select(t).order_by(t.c.created_at)
            if not all_:
                query = query.where(t.c.replayed_at.is_(None))
            try:
                async with rt.db.engine.connect() as conn:
                    rows = (await conn.execute(query)).all()
            finally:
                await rt.db.dispose()
            for r in rows:
                typer.echo(
                    json.dumps(
                        {
                            "service": name,
                            "id": str(r.id),
                            "event_id": r.event_id,
                            "type": r.event_type,
                            "topic": r.topic,
                            "attempts": r.attempts,
                            "error": r.error,
                            "created_at": r.created_at.isoformat(),
                            "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None,
                            "discarded": is_discarded(r.error),
                        },
                        ensure_ascii=False,
                    )
                )

    asyncio.run(go())


@dlq_app.command("replay")
def dlq_replay(
    service: Annotated[str, typer.Argument(help="The consuming service whose dead letters to replay.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these dead letters; repeatable.")] = None,
) -> None:
    """Run dead-lettered events through the service's handler again (the inbox keeps it exactly-once).
    A letter that still fails stays a dead letter (with the new error); the command reports it and exits 0 —
    fix the cause and replay again, or give up on it with `minsheng dlq discard`."""
    settings = _settings()

    async def go() -> list[tuple[str, str]]:
        rt = _runtime(_services(service)[0], settings)
        try:
            return await rt.consumer.replay_dead_letters(ids)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finally:
            await rt.db.dispose()

    outcomes = asyncio.run(go())
    for dead_id, outcome in outcomes:
        typer.echo(f"{dead_id}: {outcome}")
    failing = sum(1 for _, o in outcomes if o.startswith("still failing"))
    typer.echo(
        f"{service}: {len(outcomes) - failing} replayed, {failing} still failing (kept as dead letters"
        + ("; fix the cause and replay again, or `minsheng dlq discard`)" if failing else ")")
    )


@dlq_app.command("discard")
def dlq_discard(
    service: Annotated[str, typer.Argument(help="The consuming service whose dead letters to discard.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these dead letters; repeatable.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every unreplayed dead letter of the service.")] = False,
) -> None:
    """Give up on dead letters: they leave the replay queue and the MinshengDeadLetters alert. Each row stays,
    marked discarded, for the record (`dlq list --all`); the <service>.dlq topic keeps its copy."""
    if not ids and not all_:
        raise typer.BadParameter("name the dead letters with --id (repeatable), or discard every one with --all")
    settings = _settings()

    async def go() -> list[tuple[str, str | None]]:
        rt = _runtime(_services(service)[0], settings)
        try:
            return await rt.consumer.discard_dead_letters(ids)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finally:
            await rt.db.dispose()

    discarded = asyncio.run(go())
    for dead_id, event_type in discarded:
        typer.echo(f"{dead_id}: discarded ({event_type})")
    missing = sorted(set(ids or ()) - {d for d, _ in discarded})
    typer.echo(
        f"{service}: {len(discarded)} discarded"
        + (f"; not found or already replayed/discarded: {', '.join(missing)}" if missing else "")
    )


@notify_app.command("deliveries")
def notify_deliveries(
    status: Annotated[list[str] | None, typer.Option("--status", help="Repeatable; default failed and dead.")] = None,
    channel: Annotated[str | None, typer.Option(help="wechat, sms, wecom or inbox")] = None,
    limit: int = 200,
) -> None:
    """Deliveries (masked addresses, no message bodies), newest first: by default the dead and failed ones."""
    from minsheng.runner import service_module

    ops: Any = service_module("notify", "ops")
    settings = _settings()

    async def go() -> None:
        rt = _runtime("notify", settings)
        try:
            rows = await ops.list_deliveries(rt.db, status=status or ("failed", "dead"), channel=channel, limit=limit)
        finally:
            await rt.db.dispose()
        if rows:
            typer.echo(ops.render(rows))

    asyncio.run(go())


@notify_app.command("resend")
def notify_resend(
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these deliveries; repeatable.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every failed and dead delivery.")] = False,
) -> None:
    """Make failed/dead deliveries due again (attempts reset); the running sender sends them."""
    from minsheng.runner import service_module

    if not ids and not all_:
        raise typer.BadParameter("name deliveries with --id, or pass --all")
    ops: Any = service_module("notify", "ops")
    settings = _settings()

    async def go() -> int:
        rt = _runtime("notify", settings)
        try:
            return int(await ops.resend_deliveries(rt.db, ids))
        finally:
            await rt.db.dispose()

    typer.echo(f"{asyncio.run(go())} deliveries due again")


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas and the AsyncAPI document.")] = Path(
        "minsheng/contracts/schemas"
    ),
) -> None:
    """Write one JSON Schema per event and an AsyncAPI document for the whole bus."""
    from minsheng.contracts.export import write_all

    for path in write_all(out):
        typer.echo(str(path))


@app.command("dev-cluster")
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


@keys_app.command("rotate-data")
def keys_rotate_data(
    service: ServiceArg = None,
    batch: Annotated[int, typer.Option(help="Rows per committed batch.")] = 500,
    rehash: Annotated[
        bool, typer.Option(help="Also recompute the keyed lookup hashes (after MINSHENG_FIELD_LOOKUP_KEY changed).")
    ] = False,
) -> None:
    """Re-encrypt every sealed personal-data value under the current field key (MINSHENG_FIELD_KEY_CURRENT).

    Resumable (committed batches; a re-run does the rest) and safe to run on several replicas at once
    (FOR UPDATE SKIP LOCKED on PostgreSQL). The services keep serving meanwhile. See docs/operations.md."""
    from minsheng.platform.db import Database
    from minsheng.platform.keyrotation import remaining, rotate_service
    from minsheng.platform.privacy import field_cipher
    from minsheng.runner import load_spec

    settings = _settings()
    cipher = field_cipher(settings)

    async def go() -> None:
        for name in _services(service):
            spec = load_spec(name)
            if not spec.sealed:
                continue
            db = Database(settings.database_url_for(name), spec.tables)
            try:
                stats = await rotate_service(db, spec.metadata, spec.sealed, cipher, batch=batch, rehash=rehash)
                left = sum([await remaining(db, spec.metadata.tables[e.table], e, cipher) for e in spec.sealed])
            finally:
                await db.dispose()
            tables = ", ".join(f"{t} {n}" for t, n in stats.by_table.items()) or "nothing to do"
            typer.echo(
                f"{name}: {stats.rows} rows ({stats.values} values, {stats.rehashed} hashes) re-sealed "
                f"under {cipher.current} in {stats.seconds:.1f} s ({stats.rows_per_second:,.0f} rows/s): "
                f"{tables}; not yet under {cipher.current}: {left}"
            )

    asyncio.run(go())


if __name__ == "__main__":
    app()


@photos_app.command("migrate")
def photos_migrate() -> None:
    """Move the issues photos still kept in the database (from before the object store) into the object store,
    cleaned like new uploads (EXIF and GPS dropped). Idempotent; the issues service also does it in the
    background every 5 minutes."""
    from minsheng.platform.storage import store_lifespan
    from minsheng.runner import service_module

    photos: Any = service_module("issues", "photos")
    settings = _settings()

    async def go() -> int:
        rt = _runtime("issues", settings)
        try:
            async with store_lifespan(rt):
                return int(await photos.move_photos_out_of_the_database(rt))
        finally:
            await rt.db.dispose()

    typer.echo(f"{asyncio.run(go())} photos moved to the {settings.storage_backend_in_use} object store")
