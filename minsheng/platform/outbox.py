"""The outbox relay: publishes rows written by units of work, in order, and marks them sent.

Rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL, so several replicas share the work without
sending a row twice; a row is marked sent (``sent_at`` = the time of the broker's acknowledgement) only after
the broker acknowledged it, so rows left behind by a crash (or a broker outage) are simply the next ones sent.
``resend_since`` puts acknowledged rows back (a broker that lost data): consumers' inboxes drop duplicates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from minsheng.platform.bus.base import EventBus, OutgoingColumns, OutgoingMessage
from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.retry import Backoff

log = logging.getLogger(__name__)


@dataclass
class OutboxStatus:
    pending: int
    sent: int
    oldest_pending_at: datetime | None
    max_attempts: int
    last_error: str | None

    @property
    def oldest_pending_age_seconds(self) -> float:
        return (utcnow() - self.oldest_pending_at).total_seconds() if self.oldest_pending_at else 0.0


@dataclass
class _Claim:
    """Rows locked by an open transaction on their own connection, to be published and marked sent.

    On PostgreSQL the transaction is asyncpg's own (``raw_tx``) on the pooled connection's driver connection:
    the relay's two statements per batch run without SQLAlchemy's greenlet hop and row processing, which cost
    more CPU than publishing the batch. On SQLite it is SQLAlchemy's (``tx``)."""

    conn: AsyncConnection
    tx: AsyncTransaction | None
    raw_tx: Any
    # The claimed rows' ids: a list on SQLite; on PostgreSQL the uuid[] as its text literal, as the claim
    # returned it, handed back to the mark-sent as it is (no UUID object decoded and encoded per row).
    ids: list[Any] | str
    # Built when claimed: a batch claimed ahead is turned into messages while the one before it waits for
    # the broker's acknowledgement, which keeps that work off the path between two sends. On PostgreSQL the
    # claim's columns as they came (no object per message).
    messages: list[OutgoingMessage] | OutgoingColumns
    driver: Any = None  # the asyncpg connection under ``conn`` (PostgreSQL)
    finished: bool = False

    async def close(self) -> None:
        """Roll back unless committed, and give the connection back (invalidated if the driver lost it)."""
        if not self.finished:
            self.finished = True
            with suppress(Exception):
                if self.raw_tx is not None:
                    await self.raw_tx.rollback()
                elif self.tx is not None and self.tx.is_active:
                    await self.tx.rollback()
        with suppress(Exception):
            if self.driver is not None and self.driver.is_closed():
                await self.conn.invalidate()
        with suppress(Exception):
            await self.conn.close()


def _message(topic: str, key: str, payload: str, headers: dict[str, Any]) -> OutgoingMessage:
    """The payload is the stored CloudEvent JSON text: sent as its bytes, never parsed."""
    return OutgoingMessage(
        topic=topic,
        key=key,
        value=payload.encode(),
        headers=[(k, v.encode() if isinstance(v, str) else str(v).encode()) for k, v in headers.items()],
    )


async def _abandon(task: asyncio.Task[_Claim | None]) -> None:
    """A batch claimed ahead that will not be sent now: release its rows unsent."""
    if not task.done():
        task.cancel()
    try:
        claim = await task
    except BaseException:
        return
    if claim is not None:
        await claim.close()


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.published = 0
        self.failures = 0

    async def run(self) -> None:
        backoff = Backoff(0.1, self.max_backoff_seconds)  # jittered: replicas do not retry in lock-step
        while True:
            self.db.outbox_signal.clear()
            try:
                await self.drain()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                delay = backoff.next_delay()
                log.warning("outbox relay: publish failed (%s); retrying in %.1fs", exc, delay)
                await self._record_failure(exc)
                await asyncio.sleep(delay)
                continue
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self.db.outbox_signal.wait()

    async def publish_pending(self) -> int:
        """Publish one batch (the oldest unsent rows, at most ``batch_size``) and mark it sent."""
        claim = await self._claim()
        if claim is None:
            return 0
        try:
            await self._publish(claim)
            await self._commit(claim)
        finally:
            await claim.close()
        return len(claim.messages)

    async def drain(self) -> int:
        """Publish batch after batch until a batch comes back short; returns how many rows were sent.

        On PostgreSQL the database round trips overlap the broker's: the next batch is claimed (its own
        transaction; SKIP LOCKED skips this one's rows) while this one is on its way to the broker, and this
        one's commit runs while the next one is sent. A batch is only *sent* after the previous one was
        acknowledged, so messages go out in the same order as one batch at a time. If a batch fails, the one
        claimed ahead is rolled back unsent; if a commit fails, its rows stay pending and are sent again
        later (duplicates, which consumers' inboxes drop — the same as a crash between publish and commit)."""
        total = 0
        committing: asyncio.Task[None] | None = None
        claim = await self._claim()
        try:
            while claim is not None:
                full = len(claim.messages) == self.batch_size
                ahead = asyncio.create_task(self._claim()) if full and self.db.is_postgres else None
                try:
                    await self._publish(claim)
                    if committing is not None:
                        await committing
                        committing = None
                except BaseException:
                    await claim.close()
                    if ahead is not None:
                        await _abandon(ahead)
                    raise
                total += len(claim.messages)
                if ahead is None:
                    try:
                        await self._commit(claim)
                    finally:
                        await claim.close()
                    claim = await self._claim() if full else None
                else:
                    committing = asyncio.create_task(self._commit_and_close(claim))
                    claim = await ahead
        finally:
            if committing is not None:
                if claim is not None:  # leaving early (an error or cancellation above): keep nothing claimed
                    await claim.close()
                await committing
        return total

    async def _commit_and_close(self, claim: _Claim) -> None:
        try:
            await self._commit(claim)
        finally:
            await claim.close()

    async def _claim(self) -> _Claim | None:
        """Open a transaction and lock the oldest unsent rows. On PostgreSQL with ``FOR UPDATE SKIP LOCKED``:
        the lock is the claim (other replicas' relays skip these rows; it ends with the transaction, so a crashed
        relay's rows are simply claimed again). ``sent_at`` is written by ``_commit``, after the broker's
        acknowledgement, in the same transaction."""
        conn = await self.db.engine.connect()
        try:
            if self.db.is_postgres:
                return await self._claim_on_postgres(conn)
            tx = await conn.begin()
            rows = list((await conn.execute(self._select_statement)).all())
            if not rows:
                await tx.rollback()
                await conn.close()
                return None
            messages = [_message(r.topic, r.key, r.payload, r.headers) for r in rows]
            return _Claim(conn, tx, None, [r.id for r in rows], messages)
        except BaseException:
            await conn.close()
            raise

    async def _claim_on_postgres(self, conn: AsyncConnection) -> _Claim | None:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        raw_tx = driver.transaction()
        await raw_tx.start()
        try:
            ids, topics, keys, values, headers = await driver.fetchrow(self._claim_sql, self.batch_size)
        except BaseException:
            with suppress(Exception):
                await raw_tx.rollback()
            raise
        if ids is None:
            await raw_tx.rollback()
            await conn.close()
            return None
        columns = OutgoingColumns(topics, keys, values, headers)
        return _Claim(conn, None, raw_tx, ids, columns, driver=driver)

    @functools.cached_property
    def _table_sql(self) -> str:
        return self.db.engine.dialect.identifier_preparer.format_table(self.db.tables.outbox)

    @functools.cached_property
    def _claim_sql(self) -> str:
        """One row of arrays, in id order, as the producer takes them: the keys and the payloads as UTF-8 bytes
        (bytea, which asyncpg copies as they are; no row object or string encode per message in Python), each
        row's headers as its jsonb's text (the relay decodes these small objects: flattening them in
        PostgreSQL cost it twice the CPU of this claim). The locked rows are a materialized CTE, read once."""
        return (
            "WITH o AS MATERIALIZED (SELECT id, topic, key, payload, headers "
            f"FROM {self._table_sql} WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
            "SELECT array_agg(id ORDER BY id)::text, array_agg(topic ORDER BY id), "
            "array_agg(convert_to(key, 'UTF8') ORDER BY id), array_agg(convert_to(payload, 'UTF8') ORDER BY id), "
            "array_agg(headers::text ORDER BY id) FROM o"
        )

    @functools.cached_property
    def _mark_sent_sql(self) -> str:
        """One statement per batch (not per row): the batch's ids as one array, sent as the claim's text."""
        return f"UPDATE {self._table_sql} SET sent_at = $1 WHERE id = ANY($2::text::uuid[])"

    @functools.cached_property
    def _select_statement(self) -> sa.Select[Any]:
        t = self.db.tables.outbox
        return (
            sa.select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.headers)
            .where(t.c.sent_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch_size)
        )

    async def _publish(self, claim: _Claim) -> None:
        if isinstance(claim.messages, OutgoingColumns):
            publish_columns = getattr(self.bus, "publish_columns", None)
            if publish_columns is not None:
                await publish_columns(claim.messages)
                return
            claim.messages = claim.messages.messages()
        await self.bus.publish(claim.messages)

    async def _commit(self, claim: _Claim) -> None:
        """Mark the batch sent, stamped with the time the broker acknowledged it, and end the claim."""
        acknowledged_at = utcnow()
        if claim.raw_tx is not None:
            await claim.driver.execute(self._mark_sent_sql, acknowledged_at, claim.ids)
            claim.finished = True
            await claim.raw_tx.commit()
        else:
            assert claim.tx is not None
            t = self.db.tables.outbox
            await claim.conn.execute(sa.update(t).where(t.c.id.in_(claim.ids)).values(sent_at=acknowledged_at))
            claim.finished = True
            await claim.tx.commit()
        self.published += len(claim.messages)

    async def _record_failure(self, exc: Exception) -> None:
        t = self.db.tables.outbox
        try:
            async with self.db.engine.begin() as conn:
                first = (
                    (
                        await conn.execute(
                            sa.select(t.c.id).where(t.c.sent_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
                        )
                    )
                    .scalars()
                    .all()
                )
                if first:
                    await conn.execute(
                        sa.update(t)
                        .where(t.c.id.in_(first))
                        .values(attempts=t.c.attempts + 1, last_error=str(exc)[:1000])
                    )
        except Exception:  # the database may be what is down; the next loop retries anyway
            log.debug("could not record outbox failure", exc_info=True)


async def outbox_status(db: Database) -> OutboxStatus:
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sa.func.count().filter(t.c.sent_at.is_(None)),
                    sa.func.count().filter(t.c.sent_at.is_not(None)),
                    sa.func.min(t.c.created_at).filter(t.c.sent_at.is_(None)),
                    sa.func.coalesce(sa.func.max(t.c.attempts).filter(t.c.sent_at.is_(None)), 0),
                )
            )
        ).one()
        last_error = (
            await conn.execute(
                sa.select(t.c.last_error)
                .where(t.c.sent_at.is_(None), t.c.last_error.is_not(None))
                .order_by(t.c.id.desc())
                .limit(1)
            )
        ).scalar()
    oldest = row[2]
    if isinstance(oldest, str):  # SQLite aggregate loses the column type
        oldest = datetime.fromisoformat(oldest)
    return OutboxStatus(row[0], row[1], as_utc(oldest) if oldest else None, row[3], last_error)


async def resend_since(db: Database, since: datetime, *, until: datetime | None = None, dry_run: bool = False) -> int:
    """Put the events the broker acknowledged at or after ``since`` (and before ``until``) back in the outbox:
    the running relays publish them again, in their original order. For a broker that lost acknowledged data
    (restarted empty, unclean leader election): consumers' inboxes drop whatever they had already handled.
    Only rows the housekeeping has not purged yet (``MINSHENG_OUTBOX_RETENTION_HOURS``) can be re-sent.
    Returns how many rows were (or, with ``dry_run``, would be) put back."""
    t = db.tables.outbox
    cond = [t.c.sent_at.is_not(None), t.c.sent_at >= since]
    if until is not None:
        cond.append(t.c.sent_at < until)
    async with db.engine.begin() as conn:
        if dry_run:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(t).where(*cond))).scalar_one())
        result = await conn.execute(sa.update(t).where(*cond).values(sent_at=None, attempts=0, last_error=None))
    db.outbox_signal.set()
    return int(result.rowcount or 0)
