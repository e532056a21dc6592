"""Alembic, per service: each service has its own ``migrations/`` folder and version table
(``alembic_version_<service>``), so the four schemas evolve independently even in one database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.sql.sqltypes import AutoString

from minsheng.platform.db import Database
from minsheng.platform.types import JSONType, UTCDateTime


def alembic_config(name: str, migrations_dir: Path, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("version_table", f"alembic_version_{name}")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["service"] = name
    return cfg


async def upgrade(db: Database, name: str, migrations_dir: Path, revision: str = "head", settings: Any = None) -> None:
    cfg = alembic_config(name, migrations_dir)
    cfg.attributes["settings"] = settings

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def migration_cipher() -> Any:
    """The field cipher for a data migration (sealing phones …): the settings the service runs with, else the
    environment's."""
    from minsheng.platform.privacy import field_cipher
    from minsheng.settings import Settings

    settings = context.config.attributes.get("settings") or Settings()
    return field_cipher(settings)


def seal_phones(table: str, attr: str = "phone", key: str = "id", batch: int = 1000) -> int:
    """Data migration: every row of ``table`` whose ``attr`` holds a phone in clear gets it sealed — masked in
    ``attr``, encrypted (with its place as associated data) in ``<attr>_enc``, keyed hash in ``<attr>_hash``.
    Portable (SQLite and PostgreSQL), in key order, in batches; a re-run skips the rows already sealed."""
    from minsheng.platform.privacy import seal_phone

    cipher = migration_cipher()
    conn = context.get_bind()
    t = sa.table(table, sa.column(key, sa.Uuid()), sa.column(attr), sa.column(f"{attr}_enc"), sa.column(f"{attr}_hash"))
    done, after = 0, None
    while True:
        query = sa.select(t.c[key], t.c[attr]).where(t.c[attr].is_not(None), t.c[f"{attr}_enc"].is_(None))
        if after is not None:
            query = query.where(t.c[key] > after)
        rows = conn.execute(query.order_by(t.c[key]).limit(batch)).all()
        if not rows:
            return done
        for row_key, phone in rows:
            masked, enc, digest = seal_phone(cipher, phone, table, row_key, attr)
            conn.execute(
                sa.update(t)
                .where(t.c[key] == row_key)
                .values({attr: masked, f"{attr}_enc": enc, f"{attr}_hash": digest})
            )
        done += len(rows)
        after = rows[-1][0]


def unseal_phones(table: str, attr: str = "phone", key: str = "id") -> None:
    """The downgrade: the phone back in clear in ``attr``."""
    from minsheng.platform.privacy import aad_of

    cipher = migration_cipher()
    conn = context.get_bind()
    t = sa.table(table, sa.column(key, sa.Uuid()), sa.column(attr), sa.column(f"{attr}_enc"))
    for row_key, stored in conn.execute(
        sa.select(t.c[key], t.c[f"{attr}_enc"]).where(t.c[f"{attr}_enc"].is_not(None))
    ).all():
        phone = cipher.decrypt(stored, aad=aad_of(table, f"{attr}_enc", row_key))
        conn.execute(sa.update(t).where(t.c[key] == row_key).values({attr: phone}))


def create_platform_tables() -> None:
    """The tables every service's database holds for the platform (outbox, inbox, dead letters, idempotency
    keys), as of each service's initial migration. Frozen: a later change to them is a new migration."""
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=160), nullable=True),
        sa.Column("topic", sa.String(length=120), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", JSONType(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", JSONType(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=120), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=160), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", JSONType(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_unsent", ["id"], unique=False, **_OUTBOX_UNSENT)
    op.create_table(
        "processed_events",
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=160), nullable=False),
        sa.Column("processed_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "id"),
    )


def drop_platform_tables() -> None:
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unsent", **_OUTBOX_UNSENT)
    op.drop_table("outbox")
    op.drop_table("idempotency_keys")
    op.drop_table("dead_letters")


_OUTBOX_UNSENT: dict[str, Any] = {
    "postgresql_where": sa.text("sent_at IS NULL"),
    "sqlite_where": sa.text("sent_at IS NULL"),
}


def create_photos_table(table: str) -> None:
    """A service's photos table (:class:`minsheng.platform.photos.PhotoFields`, bytes in the object store) as
    first created; later changes to it are each service's own migrations."""
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", AutoString(length=200), nullable=False),
        sa.Column("storage_key", AutoString(length=300), nullable=True),
        sa.Column("thumb_key", AutoString(length=300), nullable=True),
        sa.Column("content_type", AutoString(length=40), nullable=False),
        sa.Column("source_type", AutoString(length=40), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("sha256", AutoString(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_owner"), ["owner"], unique=False)


def drop_photos_table(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{table}_owner"))
    op.drop_table(table)


def add_sealed_phones(*places: tuple[str, str]) -> None:
    """Schema and data migration for each ``(table, attr)``: the ``<attr>_enc`` and indexed ``<attr>_hash``
    columns beside the phone, then the phones already stored sealed (see :func:`seal_phones`)."""
    for table, attr in places:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(f"{attr}_enc", sa.Text(), nullable=True))
            batch_op.add_column(sa.Column(f"{attr}_hash", AutoString(length=64), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_{attr}_hash"), [f"{attr}_hash"], unique=False)
    for table, attr in places:
        seal_phones(table, attr)


def drop_sealed_phones(*places: tuple[str, str]) -> None:
    """The downgrade of :func:`add_sealed_phones`: the phones back in clear, the columns beside them gone."""
    for table, attr in places:
        unseal_phones(table, attr)
    for table, attr in reversed(places):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{attr}_hash"))
            batch_op.drop_column(f"{attr}_hash")
            batch_op.drop_column(f"{attr}_enc")


def run_env(metadata: sa.MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    version_table = config.get_main_option("version_table") or "alembic_version"

    def run(**where: Any) -> None:
        context.configure(target_metadata=metadata, version_table=version_table, render_as_batch=True, **where)
        with context.begin_transaction():
            context.run_migrations()

    def configure_and_run(connection: sa.Connection) -> None:
        run(connection=connection, compare_type=True)

    if context.is_offline_mode():
        run(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
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
