"""The relay process's wake-up on PostgreSQL: LISTEN on the service's outbox channel.

When the relay runs in a process of its own (``--role relay``), the commits of the web and consumer processes
cannot set its in-process signal; they ``NOTIFY`` the channel instead (``UnitOfWork.flush_outbox``), and this
listener, on one dedicated connection outside the pool, sets the relay's signal on each notification. A lost
connection (database restart, ``pg_terminate_backend``) is reopened with backoff. Nothing depends on it: the
relay keeps polling at its interval, so an event whose notification was lost waits one poll at most.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from minsheng.platform.db import Database
from minsheng.platform.retry import Backoff
from minsheng.platform.tasks import within

log = logging.getLogger(__name__)


def outbox_channel(service: str) -> str:
    """The NOTIFY channel of a service's outbox (per service: services may share one database)."""
    return f"minsheng_outbox_{service}"


class OutboxListener:
    def __init__(
        self,
        db: Database,
        channel: str,
        *,
        max_backoff_seconds: float = 5.0,
        keepalive_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.channel = channel
        self.max_backoff_seconds = max_backoff_seconds
        # A half-open connection (a network partition) reports nothing: a periodic query finds it out.
        self.keepalive_seconds = keepalive_seconds
        self.connections = 0  # LISTEN sessions opened (a reconnect adds one)
        self.notifications = 0
        self.listening = False
        self.server_pid: int | None = None  # the LISTEN connection's backend (for operators and tests)

    async def run(self) -> None:
        backoff = Backoff(0.1, self.max_backoff_seconds)
        while True:
            try:
                connection = await self.db.connect_driver()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                log.warning("outbox listener: cannot connect (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            opened = self.connections
            try:
                await self._listen(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listener: LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.listening = False
                with suppress(Exception):
                    await within(2, connection.close())
                if not connection.is_closed():
                    connection.terminate()  # close() did not finish: end the socket
            if self.connections > opened:  # it had been listening: start again from the shortest delay
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _listen(self, connection: Any) -> None:
        """LISTEN until the connection is lost (or a keep-alive query fails); never returns normally."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(self.channel, self._notified)
        self.server_pid = connection.get_server_pid()
        self.connections += 1
        self.listening = True
        # Rows committed while nobody listened (start-up, the reconnect) get no notification: drain them now.
        self.db.outbox_signal.set()
        while not connection.is_closed():
            with suppress(TimeoutError):
                await within(self.keepalive_seconds, lost.wait())
            if lost.is_set() or connection.is_closed():
                break
            await within(5, connection.execute("SELECT 1"))
        raise ConnectionError("the LISTEN connection was closed")

    def _notified(self, _connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.notifications += 1
        self.db.outbox_signal.set()
