"""Alembic, per service: each service has its own ``migrations/`` folder and version table
(``alembic_version_<service>``), so the four schemas evolve independently even in one database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from minsheng.platform.db import Database


def alembic_config(name: str, migrations_dir: Path, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("version_table", f"alembic_version_{name}")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["service"] = name
    return cfg


async def upgrade(db: Database, name: str, migrations_dir: Path, revision: str = "head") -> None:
    cfg = alembic_config(name, migrations_dir)

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def run_env(metadata: sa.MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    version_table = config.get_main_option("version_table") or "alembic_version"

    def configure_and_run(connection: sa.Connection) -> None:
        context.configure(
            connection=connection, target_metadata=metadata, version_table=version_table,
            render_as_batch=True, compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                          version_table=version_table, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    connection: Any = config.attributes.get("connection")
    if connection is not None:
        configure_and_run(connection)
        return

    async def run_async() -> None:
        engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
        async with engine.begin() as conn:
            await conn.run_sync(configure_and_run)
        await engine.dispose()

    asyncio.run(run_async())
