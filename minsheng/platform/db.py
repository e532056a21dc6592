"""Async database access: one engine per service database, PostgreSQL (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from minsheng.platform.fastpath import Plans
from minsheng.platform.tables import PlatformTables
from minsheng.platform.tasks import within


class Database:
    """A service's database: engine, session factory, the platform tables, and the outbox wake-up signal."""

    def __init__(
        self, url: str, tables: PlatformTables, *, pool_size: int = 10, max_overflow: int = 0, echo: bool = False
    ) -> None:
        self.url = make_url(url)
        self.tables = tables
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_postgres:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False, pool_recycle=1800)
        else:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(connect_args={"timeout": 30})
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if not self.is_postgres:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        # Reads need no transaction of their own: on PostgreSQL each statement of a READ COMMITTED transaction
        # sees its own snapshot anyway, so autocommit reads see the same and save the BEGIN and ROLLBACK round
        # trips. SQLite keeps the ordinary sessions (its reads are local calls).
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.is_postgres else self.engine,
            expire_on_commit=False,
            class_=AsyncSession,
        )
        # The fast path's compiled statements (PostgreSQL; see UnitOfWork.fetch).
        self.plans = Plans(self.engine.dialect)
        # Set after a commit that wrote outbox rows, so the relay publishes at once instead of at its next poll.
        self.outbox_signal = asyncio.Event()
        # PostgreSQL, in a process whose relay runs elsewhere (roles web and consumer): the channel a commit that
        # wrote outbox rows notifies, so the relay process (minsheng.platform.outbox_listener) wakes at once.
        self.notify_channel: str | None = None

    async def connect_driver(self, *, connect_seconds: float = 10.0) -> Any:
        """A dedicated asyncpg connection to this database, outside the pool (the relay's LISTEN), with the URL's
        ``ssl``/``sslmode`` if it names one, as the pool's connections have."""
        import asyncpg

        ssl = self.url.query.get("ssl") or self.url.query.get("sslmode")
        return await asyncpg.connect(
            host=self.url.host,
            port=self.url.port or 5432,
            user=self.url.username,
            password=self.url.password,
            database=self.url.database,
            timeout=connect_seconds,
            **({"ssl": str(ssl)} if ssl else {}),
        )

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await within(2, conn.execute(sa.text("SELECT 1")))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


async def create_database_if_missing(url: str) -> None:
    """Create a PostgreSQL database named in ``url`` if it does not exist (used by tests and `migrate`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    import asyncpg

    name = parsed.database
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def is_transient_db_error(exc: BaseException) -> bool:
    """Connection-level failures (database down, restarting): retry, never dead-letter, answer 503."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, ConnectionError, OSError)):
        return True
    if isinstance(exc, sa.exc.TimeoutError):  # pool exhausted
        return True
    # SQLAlchemy wraps asyncpg's error in its own adapted ``Error`` class (``exc.orig``), which carries the
    # SQLSTATE and has asyncpg's exception as its cause: look down the whole chain ("the database system is
    # shutting down" / "starting up" arrive as a plain DBAPIError and used to answer 500).
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _TRANSIENT_NAMES or isinstance(current, OSError):
            return True
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def broken_unique(exc: sa.exc.IntegrityError) -> tuple[str, frozenset[str]] | None:
    """The table and the columns of the unique constraint (or primary key, or unique index) that ``exc`` broke,
    if the driver names them: asyncpg's error carries the table and a detail ``Key (a, b)=(…) already exists.``;
    SQLite says ``UNIQUE constraint failed: t.a, t.b``. None for any other integrity error."""
    orig = exc.orig
    driver = getattr(orig, "__cause__", None)
    table, detail = getattr(driver, "table_name", None), getattr(driver, "detail", None)
    if getattr(driver, "sqlstate", None) == "23505" and isinstance(table, str) and isinstance(detail, str):
        if (key := _PG_KEY.match(detail)) is None:
            return None
        return table, frozenset(name.strip().strip('"') for name in key.group(1).split(","))
    failed = _SQLITE_UNIQUE.search(str(orig))
    if failed is None:
        return None
    qualified = [name.strip().split(".", 1) for name in failed.group(1).split(",")]
    tables = {parts[0] for parts in qualified}
    if len(tables) != 1 or any(len(parts) != 2 for parts in qualified):
        return None  # an expression index ("index 'ix_…'"): no columns to match
    return tables.pop(), frozenset(parts[1] for parts in qualified)


_PG_KEY = re.compile(r"Key \((.+?)\)=\(")
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")


_TRANSIENT_NAMES = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "InterfaceError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
}
# 08: connection exception; 57P01-05: admin/crash shutdown, cannot connect now (starting up / shutting down)
_TRANSIENT_SQLSTATES = ("08", "57P", "53300")


class DatabaseUnavailable(RuntimeError):
    """A service's database cannot be used, said in one sentence for an operator (no traceback). ``missing``:
    the server answered and the database does not exist (as opposed to a server that does not answer)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


async def ensure_database(url: str, *, connect_timeout: float = 10.0) -> str | None:
    """Make sure the PostgreSQL database named in ``url`` exists and answers: create it when it is missing and
    the role may (``CREATEDB``). Returns the database's name if it was created, else None (SQLite: nothing to
    do). Raises :class:`DatabaseUnavailable` with a clear message otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    import asyncpg

    where = f"{parsed.username or ''}@{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"
    connect = {
        "host": parsed.host,
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "timeout": connect_timeout,
    }
    try:
        conn = await asyncpg.connect(database=parsed.database, **connect)
    except asyncpg.InvalidCatalogNameError:
        pass  # missing: create it below
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL ({where}): {type(exc).__name__}: {exc}") from exc
    else:
        await conn.close()
        return None
    try:
        await create_database_if_missing(url)
    except Exception as exc:
        raise DatabaseUnavailable(
            f"database {parsed.database!r} does not exist and could not be created ({where}): "
            f"{type(exc).__name__}: {exc}. Create it (deploy/postgres/init/10-minsheng-databases.sh does, per "
            f"service) or run `minsheng migrate` with a role that may",
            missing=True,
        ) from exc
    return parsed.database
