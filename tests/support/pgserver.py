"""A private PostgreSQL server of a test's own, on its own TCP port, that the test may stop, kill and start
again (the session-wide server is shared with others and must never be restarted)."""

from __future__ import annotations

from minsheng.localinfra.postgres import PostgresServer as PrivatePostgres

__all__ = ["PrivatePostgres"]
