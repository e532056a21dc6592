"""The unit of work: one database transaction that commits a use case's state changes together with the
events it emits (outbox) and, when handling an event, the inbox row that makes the handling idempotent.

Use cases never commit; the view or the event consumer that opened the unit of work does, once.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.db import Database
from minsheng.platform.envelope import CONTENT_TYPE, CloudEvent, wrap
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


class UnitOfWork:
    def __init__(self, db: Database, service: str) -> None:
        self.db = db
        self.service = service
        self._pending: list[dict[str, Any]] = []
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self.db.sessionmaker()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        self._pending.clear()
        if session is not None:
            if session.in_transaction():
                await session.rollback()
            await session.close()

    def emit(self, event: IntegrationEvent, *, subject: str | None = None) -> CloudEvent:
        """Queue an integration event; it is written to the outbox in this unit's transaction."""
        envelope = wrap(event, service=self.service, subject=subject)
        self._pending.append(outbox_row(envelope, event.topic))
        return envelope

    async def seen(self, envelope: CloudEvent) -> bool:
        t = self.db.tables.processed_events
        found = await self.session.execute(
            sa.select(sa.literal(1)).where(t.c.source == envelope.source, t.c.id == envelope.id)
        )
        return found.first() is not None

    async def mark_processed(self, envelope: CloudEvent) -> None:
        t = self.db.tables.processed_events
        await self.session.execute(
            sa.insert(t).values(source=envelope.source, id=envelope.id, type=envelope.type, processed_at=utcnow())
        )

    async def flush_outbox(self) -> None:
        if self._pending:
            await self.session.execute(sa.insert(self.db.tables.outbox), self._pending)

    async def commit(self) -> None:
        wrote_events = bool(self._pending)
        await self.flush_outbox()
        self._pending.clear()
        await self.session.commit()
        if wrote_events:
            self.db.outbox_signal.set()

    async def rollback(self) -> None:
        self._pending.clear()
        await self.session.rollback()
