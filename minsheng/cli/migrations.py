"""Each service's database schema: apply the migrations, autogenerate a new one."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Annotated, Any

import typer

from minsheng.cli.common import ServiceArg, service_names, settings_from_env


def migrate(service: ServiceArg = None) -> None:
    """Apply each service's migrations to its database (creating a PostgreSQL database if missing)."""
    from minsheng.runner import migrate_service

    settings = settings_from_env()

    async def go() -> None:
        for name in service_names(service):
            url = await migrate_service(settings, name)
            typer.echo(f"{name}: migrated ({url})")

    asyncio.run(go())


def makemigrations(service: str, message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """Autogenerate a new migration for a service from its models (developers)."""
    from alembic import command

    from minsheng.platform.db import Database
    from minsheng.platform.migrations import alembic_config, upgrade
    from minsheng.runner import load_spec

    spec = load_spec(service_names(service)[0])
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
