"""The platform's own tables, added to every service's metadata: outbox, inbox, dead letters, idempotency.

They are SQLAlchemy Core tables, not ORM models: they sit on the hottest write paths and are only ever
inserted and updated in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from minsheng.platform.types import JSONType, UTCDateTime


@dataclass(frozen=True)
class PlatformTables:
    outbox: sa.Table
    processed_events: sa.Table
    dead_letters: sa.Table
    idempotency_keys: sa.Table


def install_platform_tables(metadata: sa.MetaData) -> PlatformTables:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),  # = the CloudEvent id (UUIDv7, time-ordered)
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("type", sa.String(160), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),  # the structured-mode CloudEvent JSON
        sa.Column("headers", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Index(
            "ix_outbox_unsent",
            "id",
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        ),
    )
    processed = sa.Table(
        "processed_events",
        metadata,
        sa.Column("source", sa.String(120), primary_key=True),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("type", sa.String(160), nullable=False),
        sa.Column("processed_at", UTCDateTime, nullable=False),
    )
    dead = sa.Table(
        "dead_letters",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("event_type", sa.String(160), nullable=True),
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("key", sa.String(120), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("headers", JSONType, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("replayed_at", UTCDateTime, nullable=True),
    )
    idem = sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("scope", sa.String(200), primary_key=True),  # who + which operation
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    return PlatformTables(outbox, processed, dead, idem)
