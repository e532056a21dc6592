"""The ``minsheng`` command."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
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
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlq_app, name="dlq")
keys_app = typer.Typer(help="Keys: field encryption (personal data at rest).", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(keys_app, name="keys")
app.add_typer(topics_cli, name="topics")

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
    """Run all four services in one process on one port (embedded mode: SQLite + in-process bus)."""
    import uvicorn

    from minsheng.platform.observability import configure_logging
    from minsheng.runner import build_app

    overrides: dict[str, Any] = {"mode": "embedded"}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = _settings(**overrides)
    configure_logging(settings.log_level, settings.log_json)
    typer.echo(f"Minsheng on http://{host}:{port}/  (data in {settings.data_dir.resolve()})")
    uvicorn.run(build_app(settings, demo=demo, freeze_gc=True), host=host, port=port, log_config=None,
                proxy_headers=True)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of {', '.join(SERVICES)}.")],
    host: str = "0.0.0.0",
    port: int = 8000,
) -> None:
    """Run one service alone, on PostgreSQL and Kafka from settings (distributed mode). Scale by running more
    replicas (each one process), not workers: the relay and consumers are per process."""
    import uvicorn

    from minsheng.platform.observability import configure_logging
    from minsheng.runner import build_app

    _services(service)
    settings = _settings(**({} if "MINSHENG_MODE" in os.environ else {"mode": "distributed"}))
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(build_app(settings, [service], freeze_gc=True), host=host, port=port, log_config=None,
                proxy_headers=True)


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
    role: Annotated[list[str], typer.Option("--role", "-r", help="resident, grid_worker, rider, merchant, "
                                            "staff, admin; repeatable.")],
    sub: Annotated[str, typer.Option(help="The subject (user id).")] = "dev-user",
    scope: Annotated[list[str] | None, typer.Option("--scope", "-s", help="e.g. community:yunxing, "
                                                    "compound:yuntaiyuan, *; repeatable.")] = None,
    name: str | None = None,
    ttl: Annotated[int, typer.Option(help="Seconds until it expires.")] = 3600 * 12,
) -> None:
    """Mint a development JWT (signed with MINSHENG_JWT_SECRET)."""
    from minsheng.platform.auth import mint_token

    for value in scope or []:
        # A token's scope claim is one space-separated string: "community:x *" would be read as two scopes,
        # one of them district-wide.
        if not value or any(c.isspace() for c in value) or "\x00" in value:
            raise typer.BadParameter(f"{value!r}: a scope value may not be empty or contain whitespace; "
                                     "repeat --scope for several", param_hint="--scope")
    typer.echo(mint_token(_settings(), sub, role, scope or [], name=name, ttl_seconds=ttl))


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
            line = (f"{name:8} pending={s.pending} sent={s.sent} "
                    f"oldest_pending_age={s.oldest_pending_age_seconds:.1f}s max_attempts={s.max_attempts}")
            typer.echo(line + (f" last_error={s.last_error!r}" if s.last_error else ""))

    asyncio.run(go())


@dlq_app.command("list")
def dlq_list(service: ServiceArg = None, all_: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Dead letters not yet replayed (``--all`` includes replayed ones)."""
    import sqlalchemy as sa

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
                typer.echo(json.dumps({"service": name, "id": str(r.id), "event_id": r.event_id,
                                       "type": r.event_type, "topic": r.topic, "attempts": r.attempts,
                                       "error": r.error, "created_at": r.created_at.isoformat(),
                                       "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None},
                                      ensure_ascii=False))

    asyncio.run(go())


@dlq_app.command("replay")
def dlq_replay(
    service: Annotated[str, typer.Argument(help="The consuming service whose dead letters to replay.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these dead letters; repeatable.")] = None,
) -> None:
    """Run dead-lettered events through the service's handler again (the inbox keeps it exactly-once)."""
    settings = _settings()

    async def go() -> int:
        rt = _runtime(_services(service)[0], settings)
        try:
            outcomes = await rt.consumer.replay_dead_letters(ids)
        finally:
            await rt.db.dispose()
        for dead_id, outcome in outcomes:
            typer.echo(f"{dead_id}: {outcome}")
        return sum(1 for _, o in outcomes if o.startswith("failed"))

    failed = asyncio.run(go())
    raise typer.Exit(code=1 if failed else 0)


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas and the AsyncAPI document.")] = Path(
        "minsheng/contracts/schemas"),
) -> None:
    """Write one JSON Schema per event and an AsyncAPI document for the whole bus."""
    from minsheng.contracts.export import write_all

    for path in write_all(out):
        typer.echo(str(path))


if __name__ == "__main__":
    app()


@keys_app.command("rotate-data")
def keys_rotate_data(
    service: ServiceArg = None,
    batch: Annotated[int, typer.Option(help="Rows per committed batch.")] = 500,
    rehash: Annotated[bool, typer.Option(help="Also recompute the keyed lookup hashes (after "
                                         "MINSHENG_FIELD_LOOKUP_KEY changed).")] = False,
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
            typer.echo(f"{name}: {stats.rows} rows ({stats.values} values, {stats.rehashed} hashes) re-sealed "
                       f"under {cipher.current} in {stats.seconds:.1f} s ({stats.rows_per_second:,.0f} rows/s): "
                       f"{tables}; not yet under {cipher.current}: {left}")

    asyncio.run(go())
