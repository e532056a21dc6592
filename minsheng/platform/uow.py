"""The unit of work: one database transaction that commits a use case's state changes together with the
events it emits (outbox) and, when handling an event, the inbox row that makes the handling idempotent.

Use cases never commit; the view or the event consumer that opened the unit of work does, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import greenlet_spawn

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.db import Database
from minsheng.platform.envelope import CONTENT_TYPE, CloudEvent, wrap
from minsheng.platform.fastpath import translate_error
from minsheng.platform.ids import utcnow


def outbox_row(envelope: CloudEvent, topic: str) -> dict[str, Any]:
    headers = {"ce_type": envelope.type, "ce_id": str(envelope.id), "content-type": CONTENT_TYPE}
    if envelope.traceparent:
        headers["traceparent"] = envelope.traceparent
    return {
        "id": envelope.id,
        "topic": topic,
        "key": envelope.partitionkey,
        "type": envelope.type,
        "payload": envelope.model_dump_json(exclude_none=True),
        "headers": headers,
        "created_at": envelope.time,
        "attempts": 0,
    }


def _notifying(insert: sa.Insert, channel: str | None) -> sa.Insert:
    """``… RETURNING pg_notify(<channel>, '')`` when the relay runs in another process: the NOTIFY rides in the
    outbox INSERT (no round trip of its own), is delivered at commit and only if the transaction commits, and
    PostgreSQL folds the identical notifications of one transaction into one."""
    if channel is None:
        return insert
    return insert.returning(sa.func.pg_notify(sa.literal(channel, sa.Text), sa.literal("", sa.Text)))


@functools.cache
def _rows_insert(parts: tuple[tuple[sa.Table, tuple[str, ...]], ...], notify_channel: str | None = None) -> sa.Insert:
    """One row into each of several tables in one statement: ``WITH w0 AS (INSERT INTO …), w1 AS (…) INSERT INTO
    <last> …`` (PostgreSQL; the foreign keys are checked at the statement's end). Bound parameters
    ``p<n>_<column>`` for the n-th part; built once per table and column set, so its compiled form is cached:
    one round trip instead of one per row. With ``notify_channel`` the last part is the outbox row."""

    def insert(n: int, table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
        return sa.insert(table).values({c: sa.bindparam(f"p{n}_{c}", type_=table.c[c].type) for c in columns})

    *ctes, (table, columns) = parts
    last = insert(len(ctes), table, columns)
    if ctes:
        last = last.add_cte(*(insert(n, t, cs).cte(f"w{n}") for n, (t, cs) in enumerate(ctes)))
    return _notifying(last, notify_channel)


@functools.cache
def _insert_many(table: sa.Table, notify_channel: str | None = None) -> sa.Insert:
    """The INSERT an executemany of several rows runs (SQLAlchemy sends them as one multi-row statement), built
    once per table; with ``notify_channel`` (outbox rows) it notifies the relay."""
    return _notifying(sa.insert(table), notify_channel)


@functools.cache
def _seen_statement(inbox: sa.Table) -> sa.Select[Any]:
    return sa.select(sa.literal(1)).where(
        inbox.c.source == sa.bindparam("source", type_=inbox.c.source.type),
        inbox.c.id == sa.bindparam("id", type_=inbox.c.id.type),
    )


class UnitOfWork:
    """``read_only`` units (the GET requests) run without a transaction of their own and cannot commit.

    On PostgreSQL a read-only unit opens no session until something asks for :attr:`session`: its fast-path
    statements (:meth:`fetch`) run on a connection checked out of the engine's pool (the same pool and budget as
    the sessions'), in autocommit, held for the unit's lifetime and given back at ``__aexit__``. A session asked
    for later gets a connection of its own; as every read is autocommit (each statement sees its own snapshot,
    as in a READ COMMITTED transaction), running them on two connections loses no consistency."""

    def __init__(self, db: Database, service: str, *, read_only: bool = False) -> None:
        self.db = db
        self.service = service
        self.read_only = read_only
        self._pending: list[dict[str, Any]] = []
        self._inbox: list[dict[str, Any]] = []
        self._at_commit: list[tuple[sa.Table, dict[str, Any]]] = []  # rows ``insert_at_commit`` queued
        self._session: AsyncSession | None = None
        self._driver: tuple[Any, Any] | None = None  # (SQLAlchemy's asyncpg adapter, asyncpg connection)
        # Read-only units on PostgreSQL: the pool's connection (a ``_ConnectionFairy``) the fast path runs on.
        self._pooled: Any = None
        self._returning: asyncio.Task[None] | None = None
        self._open = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            if not self._open:
                raise RuntimeError("unit of work used outside `async with`")
            self._session = self.db.read_sessionmaker()  # a read-only unit on PostgreSQL, on first use
            if self._pooled is not None:
                # One connection per unit: holding the fast path's while the session waits for another could
                # starve the pool under load. It is idle between statements, so it goes back now, and later
                # fast-path statements run on the session's connection.
                pooled, self._pooled, self._driver = self._pooled, None, None
                self._returning = asyncio.get_running_loop().create_task(_give_back(pooled))
        return self._session

    @property
    def _pools_directly(self) -> bool:
        return self.read_only and self.db.is_postgres

    async def __aenter__(self) -> UnitOfWork:
        self._open = True
        if not self._pools_directly:
            self._session = (self.db.read_sessionmaker if self.read_only else self.db.sessionmaker)()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        pooled, self._pooled = self._pooled, None
        self._driver = None
        self._open = False
        self._pending.clear()
        self._inbox.clear()
        self._at_commit.clear()
        try:
            if session is not None:
                await session.close()  # rolls back what was not committed
        finally:
            if pooled is not None:
                await _give_back(pooled)
            returning, self._returning = self._returning, None
            if returning is not None:
                await returning

    # --- the fast path: one code path for both databases (minsheng.platform.fastpath) ----------------------

    async def fetch(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> list[sa.Row[Any]]:
        """Run a Core statement in this unit's transaction and return its rows. On PostgreSQL the statement is
        compiled once and run on the asyncpg connection under the session (no session execute, no greenlet
        hop); on SQLite it goes through the session's connection. Statements must be built once (module level
        or ``functools.cache``), as their compiled form is cached by object."""
        params = params or {}
        plan = self.db.plans.plan(statement, params) if self.db.is_postgres else None
        if plan is None or plan.via_session:
            connection = await self.session.connection()
            result = await connection.execute(statement, dict(params))
            return list(result.all()) if result.returns_rows else []
        args = plan.arguments(params)
        adapter, driver = await self._driver_connection()
        try:
            async with adapter._execute_mutex:
                if adapter._transaction is None and adapter.isolation_level != "autocommit":
                    # SQLAlchemy's adapter sends BEGIN lazily, before its first statement: ours must be inside.
                    await adapter._start_transaction()
                if not plan.resolved:
                    await plan.resolve(driver)
                if plan.metadata is None:
                    await driver.execute(plan.sql, *args)
                    return []
                records = await driver.fetch(plan.sql, *args)
        except Exception as error:
            dialect = self.db.engine.dialect
            translated = translate_error(adapter, dialect, plan.sql, args, error)
            if translated is error:
                raise
            orig: Any = getattr(translated, "orig", None)
            if isinstance(translated, sa.exc.DBAPIError) and dialect.is_disconnect(orig, adapter, None):
                translated.connection_invalidated = True
                await self._invalidate(error)
            raise translated from error
        except BaseException:
            # Cancelled mid-statement: the connection's protocol state is unknown (asyncpg would refuse the
            # next statement with "another operation is in progress"), so it is dropped, not pooled again.
            await self._invalidate()
            raise
        return plan.rows(records)

    async def _invalidate(self, error: BaseException | None = None) -> None:
        """As SQLAlchemy does for its own statements on a disconnect or a cancellation: the pool must not hand
        this connection out again."""
        self._driver = None
        pooled, self._pooled = self._pooled, None
        if pooled is not None:  # closes the connection and returns its (now empty) slot to the pool
            with contextlib.suppress(Exception):
                await greenlet_spawn(pooled.invalidate, error)
            return
        with contextlib.suppress(Exception):
            await (await self.session.connection()).invalidate()

    async def fetchrow(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> sa.Row[Any] | None:
        rows = await self.fetch(statement, params)
        return rows[0] if rows else None

    async def execute(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> None:
        await self.fetch(statement, params)

    async def _driver_connection(self) -> tuple[Any, Any]:
        """SQLAlchemy's asyncpg adapter and the asyncpg connection under the session's connection."""
        if self._driver is None:
            if self._pools_directly and self._session is None:
                if not self._open:
                    raise RuntimeError("unit of work used outside `async with`")
                # In a greenlet: checking out may have to open a connection or wait for one (pool_timeout).
                self._pooled = await greenlet_spawn(self.db.engine.sync_engine.pool.connect)
                adapter: Any = self._pooled.dbapi_connection
                adapter.autocommit = True  # as the read engine's connections (Database.read_sessionmaker)
            else:
                connection = await self.session.connection()
                raw = await connection.get_raw_connection()
                adapter = raw.dbapi_connection
            self._driver = (adapter, adapter.driver_connection)
        return self._driver

    async def flush_orm(self) -> None:
        """Write the session's pending ORM changes now, so that fast-path statements reading the same rows see
        them (the fast path does not autoflush as ``session.execute`` does)."""
        session = self._session
        if session is not None and (session.new or session.dirty or session.deleted):
            await session.flush()

    async def refresh_orm(self, model: type[Any], ids: Iterable[Any]) -> None:
        """Read again the session's loaded copies of these rows of ``model``: a fast-path statement changed them,
        and a stale copy would write its old values back at the next flush. Rows the session has not loaded
        cost nothing."""
        session = self._session
        if session is None or not session.identity_map:
            return
        for ident in ids:
            loaded = session.identity_map.get(session.identity_key(model, ident))
            if loaded is not None:
                await session.refresh(loaded)

    def emit(self, event: IntegrationEvent, *, subject: str | None = None) -> CloudEvent:
        """Queue an integration event; it is written to the outbox in this unit's transaction."""
        envelope = wrap(event, service=self.service, subject=subject)
        self._pending.append(outbox_row(envelope, event.topic))
        return envelope

    async def seen(self, envelope: CloudEvent) -> bool:
        found = await self.session.execute(
            _seen_statement(self.db.tables.processed_events), {"source": envelope.source, "id": envelope.id}
        )
        return found.first() is not None

    async def mark_processed(self, envelope: CloudEvent) -> None:
        """Record ``envelope`` as handled (the inbox row). It is written at commit, with the outbox rows: on
        PostgreSQL both go in one statement. A concurrent delivery of the same event that committed first
        makes the commit raise ``IntegrityError``."""
        self._inbox.append(
            {"source": envelope.source, "id": envelope.id, "type": envelope.type, "processed_at": utcnow()}
        )

    def insert_at_commit(self, table: sa.Table, row: Mapping[str, Any]) -> None:
        """Queue a one-row INSERT (every column the row gives) to be written at commit, with the outbox and inbox
        rows: on PostgreSQL in the same statement, so it costs no round trip of its own. For a row nothing in
        the unit reads back; a constraint it breaks raises ``IntegrityError`` from :meth:`commit`."""
        self._at_commit.append((table, dict(row)))

    async def flush_outbox(self) -> None:
        """Write the queued rows — ``insert_at_commit``'s, the inbox row and the outbox row — in one round trip on
        PostgreSQL: ``WITH w0 AS (INSERT INTO …), w1 AS (INSERT INTO processed_events …) INSERT INTO outbox …``.
        Several inbox or outbox rows (a consumed batch) go as one multi-row INSERT each."""
        t = self.db.tables
        channel = self.db.notify_channel  # None unless the relay runs in another process (PostgreSQL only)
        one_statement = list(self._at_commit)
        self._at_commit.clear()
        if not self.db.is_postgres:
            for table, row in one_statement:
                await self.execute(_rows_insert(((table, tuple(row)),)), {f"p0_{k}": v for k, v in row.items()})
            one_statement.clear()
        if len(self._inbox) == 1 and self.db.is_postgres:
            one_statement.append((t.processed_events, self._inbox[0]))
        elif self._inbox:
            await self.session.execute(_insert_many(t.processed_events), self._inbox)
        notify = None
        if len(self._pending) == 1:
            one_statement.append((t.outbox, self._pending[0]))
            notify = channel
        elif self._pending:
            await self.session.execute(_insert_many(t.outbox, channel), self._pending)
        if one_statement:
            parts = tuple((table, tuple(row)) for table, row in one_statement)
            params = {f"p{n}_{k}": v for n, (_, row) in enumerate(one_statement) for k, v in row.items()}
            await self.execute(_rows_insert(parts, notify), params)
        self._inbox.clear()

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit: open it with read_only=False")
        wrote_events = bool(self._pending)
        await self.flush_outbox()
        self._pending.clear()
        await self.session.commit()
        self._driver = None  # the session gave its connection back
        if wrote_events:
            self.db.outbox_signal.set()

    async def rollback(self) -> None:
        self._pending.clear()
        self._inbox.clear()
        self._at_commit.clear()
        if self._pooled is None:  # an autocommit fast-path connection has nothing to roll back: it is kept
            self._driver = None
        if self._session is not None or not self._pools_directly:
            await self.session.rollback()


async def _give_back(pooled: Any) -> None:
    """Return a read-only unit's fast-path connection to the pool, as the read engine's connections go back: out
    of autocommit (the pool's reset then has no transaction to roll back). In a greenlet, as closing an overflow
    connection awaits."""
    adapter = pooled.dbapi_connection
    if adapter is not None:
        adapter.autocommit = False
    await greenlet_spawn(pooled.close)
