"""The fast path (UnitOfWork.fetch / fetchrow / execute): PostgreSQL (compiled once, run on asyncpg) and SQLite
(through the session) give the same rows and types, run inside the unit's transaction, and raise SQLAlchemy's
exceptions."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from minsheng.contracts.points import HazardReported
from minsheng.platform.db import Database, create_database_if_missing, is_transient_db_error
from minsheng.platform.ids import uuid7
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime
from minsheng.platform.uow import UnitOfWork
from tests.support.infra import database_template, drop_databases


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


class Reversed(sa.TypeDecorator[str]):
    """Stands in for the encrypted fields: a bind and a result processor that must both run."""

    impl = sa.String(60)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else "enc:" + value[::-1]

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.removeprefix("enc:")[::-1]


metadata = sa.MetaData()
things = sa.Table(
    "fp_things",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("colour", sa.Enum(Colour, native_enum=False, length=10), nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("secret", Reversed, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("label", sa.String(20), nullable=False, default="plain"),  # a default SQLAlchemy fills in Python
)
platform_tables = install_platform_tables(metadata)
c = things.c

INSERT = sa.insert(things).values({col.name: sa.bindparam(col.name, type_=col.type) for col in things.columns})
BY_NAMES = (
    sa.select(c.id, c.name, c.colour, c.data, c.secret, c.at, c.amount, sa.literal(7).label("seven"))
    .where(c.name.in_(sa.bindparam("names", expanding=True)), c.colour != sa.literal(Colour.blue, type_=c.colour.type))
    .order_by(c.amount)
)
BY_ID = sa.select(c.name, c.secret, c.label).where(c.id == sa.bindparam("id"))
WITHOUT_LABEL = sa.insert(things).values(
    {col.name: sa.bindparam(col.name, type_=col.type) for col in things.columns if col.name != "label"}
)
BUMP = sa.update(things).where(c.id == sa.bindparam("b_id")).values(amount=c.amount + 1).returning(c.amount)
PID = sa.select(sa.func.pg_backend_pid().label("pid"))
COUNT = sa.select(sa.func.count()).select_from(things)
# numeric from PostgreSQL read as a Float column: the result processor depends on the type PostgreSQL reports
TOTALS = sa.select(sa.func.sum(c.amount).label("total"), sa.func.avg(c.amount, type_=sa.Float()).label("mean")).where(
    c.name.in_(sa.bindparam("names", expanding=True))
)


@pytest.fixture(params=["sqlite", "postgresql"])
def server_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite; else the PostgreSQL server (started only for the PostgreSQL cases)."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_base_url"))


@pytest.fixture
async def db(server_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    template = database_template(server_url) if server_url else None
    if template is None:
        url = f"sqlite+aiosqlite:///{tmp_path}/fp.db"
    else:
        url = template.replace("{service}", "fastpath")
        await create_database_if_missing(url)
    database = Database(url, platform_tables)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()
    if server_url and template:
        await drop_databases(server_url, template, ("fastpath",))


def row_values(name: str, amount: int, colour: Colour = Colour.red) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "name": name,
        "colour": colour,
        "data": {"tags": ["a", "b"], "n": amount, "中文": True},
        "secret": f"s-{name}",
        "at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "amount": amount,
        "label": "given",
    }


async def test_rows_and_types_are_those_of_the_session(db: Database) -> None:
    rows = [row_values("a", 1), row_values("b", 2), row_values("c", 3, Colour.blue), row_values("d", 4)]
    async with UnitOfWork(db, "points") as uow:
        for r in rows:
            await uow.execute(INSERT, r)
        await uow.commit()
    for names in (["a", "b", "c"], ["d"], ["a", "b", "c", "d"], []):
        async with UnitOfWork(db, "points", read_only=True) as uow:
            fast = await uow.fetch(BY_NAMES, {"names": names})
            slow = (await uow.session.execute(BY_NAMES, {"names": names})).all()
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
        assert [r._mapping for r in fast] == [r._mapping for r in slow]
        async with UnitOfWork(db, "points", read_only=True) as uow:
            fast_totals = await uow.fetchrow(TOTALS, {"names": names})
            slow_totals = (await uow.session.execute(TOTALS, {"names": names})).one()
        assert fast_totals is not None
        assert tuple(fast_totals) == tuple(slow_totals)
        assert [type(v) for v in fast_totals] == [type(v) for v in slow_totals]
    async with UnitOfWork(db, "points", read_only=True) as uow:
        got = await uow.fetch(BY_NAMES, {"names": ["a", "b", "c", "d"]})
    assert [r.name for r in got] == ["a", "b", "d"]  # the literal in the WHERE (not blue) holds
    first = got[0]
    assert isinstance(first, sa.Row)
    assert first.id == rows[0]["id"] and isinstance(first.id, UUID)
    assert first.colour is Colour.red
    assert first.data == {"tags": ["a", "b"], "n": 1, "中文": True}
    assert first.secret == "s-a"  # the TypeDecorator's result processor ran
    assert first.at == rows[0]["at"] and first.at.tzinfo is not None
    assert first.seven == 7


async def _committed(db: Database, statement: Any, values: dict[str, Any]) -> None:
    """``statement`` on the fast path, in a unit of its own that commits."""
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(statement, values)
        await uow.commit()


async def test_bind_processors_run_and_rows_are_stored_as_the_session_stores_them(db: Database) -> None:
    r = row_values("x", 1)
    await _committed(db, INSERT, r)
    async with db.engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT secret FROM fp_things"))).scalar_one()
    assert stored == "enc:x-s"
    async with UnitOfWork(db, "points", read_only=True) as uow:
        row = await uow.fetchrow(BY_ID, {"id": r["id"]})
        missing = await uow.fetchrow(BY_ID, {"id": uuid7()})
    assert row is not None and (row.name, row.secret, row.label) == ("x", "s-x", "given")
    assert missing is None


async def test_a_statement_needing_python_side_defaults_still_gets_them(db: Database) -> None:
    r = row_values("y", 1)
    del r["label"]
    await _committed(db, WITHOUT_LABEL, r)
    async with UnitOfWork(db, "points", read_only=True) as uow:
        row = await uow.fetchrow(BY_ID, {"id": r["id"]})
    assert row is not None and row.label == "plain"


async def test_the_fast_path_runs_in_the_units_transaction(db: Database) -> None:
    kept = row_values("kept", 1)
    await _committed(db, INSERT, kept)
    # A rolled-back unit leaves nothing: its fast-path writes, its session writes, its outbox rows.
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(INSERT, row_values("gone", 2))
        bumped = await uow.fetchrow(BUMP, {"b_id": kept["id"]})
        assert bumped is not None and bumped.amount == 2
        await uow.session.execute(sa.insert(things).values(row_values("gone-too", 3)))
        counted = await uow.fetchrow(COUNT)
        assert counted is not None and counted[0] == 3  # sees its own writes, through either path
        await uow.rollback()
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(INSERT, row_values("dropped", 4))
        # leaving without commit rolls back too
    async with UnitOfWork(db, "points", read_only=True) as uow:
        rows = await uow.fetch(BY_NAMES, {"names": ["kept", "gone", "gone-too", "dropped"]})
    assert [(r.name, r.amount) for r in rows] == [("kept", 1)]


async def test_a_commit_keeps_fast_path_and_session_writes_together(db: Database) -> None:
    a, b = row_values("a", 1), row_values("b", 2)
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(INSERT, a)
        await uow.session.execute(sa.insert(things).values(b))
        await uow.commit()
        # after a commit the unit may go on: a new transaction, on whatever connection the session takes
        await uow.execute(BUMP, {"b_id": a["id"]})
        await uow.commit()
    async with UnitOfWork(db, "points", read_only=True) as uow:
        rows = await uow.fetch(BY_NAMES, {"names": ["a", "b"]})
    assert sorted((r.name, r.amount) for r in rows) == [("a", 2), ("b", 2)]


def _event() -> HazardReported:
    return HazardReported(
        report_id=uuid7(),
        rider_id=uuid7(),
        category="road",
        urgent=False,
        description="x",
        reported_at=datetime.now(UTC),
    )


async def _outbox_rows(db: Database) -> int:
    async with UnitOfWork(db, "points", read_only=True) as uow:
        counted = await uow.fetchrow(sa.select(sa.func.count()).select_from(db.tables.outbox))
    assert counted is not None
    return int(counted[0])


async def test_rows_queued_for_commit_are_written_with_the_outbox_row_or_not_at_all(db: Database) -> None:
    a, b = row_values("queued-a", 1), row_values("queued-b", 2, Colour.blue)
    async with UnitOfWork(db, "points") as uow:
        uow.insert_at_commit(things, a)
        uow.insert_at_commit(things, b)
        uow.emit(_event())
        assert await uow.fetchrow(BY_ID, {"id": a["id"]}) is None  # queued, not written yet
        await uow.commit()
    async with UnitOfWork(db, "points") as uow:
        uow.insert_at_commit(things, row_values("rolled-back", 3))
        uow.emit(_event())
        await uow.rollback()
        await uow.commit()  # the rollback dropped the queued row and event: nothing left to write
    async with UnitOfWork(db, "points") as uow:
        uow.insert_at_commit(things, row_values("never-committed", 4))
    # A queued row that breaks a constraint fails the commit, with its outbox row; the unit goes on after it.
    async with UnitOfWork(db, "points") as uow:
        uow.insert_at_commit(things, a)
        uow.emit(_event())
        with pytest.raises(sa.exc.IntegrityError):
            await uow.commit()
        await uow.rollback()
        uow.insert_at_commit(things, row_values("after", 5))
        await uow.commit()
    async with UnitOfWork(db, "points", read_only=True) as uow:
        rows = await uow.fetch(BY_NAMES, {"names": ["queued-a", "queued-b", "rolled-back", "never-committed", "after"]})
        stored = await uow.fetchrow(BY_ID, {"id": a["id"]})
        blue = await uow.fetchrow(BY_ID, {"id": b["id"]})
    # queued-b is blue: BY_NAMES leaves blue out
    assert [(r.name, r.amount, r.data, r.secret) for r in rows] == [
        ("queued-a", 1, a["data"], "s-queued-a"),
        ("after", 5, row_values("after", 5)["data"], "s-after"),
    ]
    assert stored is not None and stored.label == "given"
    assert blue is not None and blue.secret == "s-queued-b"
    assert await _outbox_rows(db) == 1


async def test_driver_errors_are_sqlalchemys(db: Database) -> None:
    r = row_values("dup", 1)
    await _committed(db, INSERT, r)
    async with UnitOfWork(db, "points") as uow:
        with pytest.raises(sa.exc.IntegrityError):
            await uow.execute(INSERT, r)
        await uow.rollback()
        await uow.execute(INSERT, row_values("after", 2))  # the unit is usable after its rollback
        await uow.commit()
    async with UnitOfWork(db, "points", read_only=True) as uow:
        assert [x.name for x in await uow.fetch(BY_NAMES, {"names": ["dup", "after"]})] == ["dup", "after"]


async def lose_the_connection(db: Database, uow: UnitOfWork) -> int:
    """The server ends the unit's connection (its backend's process id is returned): the unit's next statement
    fails as a lost connection, invalidated and transient (one to retry)."""
    pid = await uow.fetchrow(PID)
    assert pid is not None
    async with db.engine.connect() as other:
        await other.execute(sa.select(sa.func.pg_terminate_backend(pid.pid)))
    with pytest.raises(sa.exc.DBAPIError) as raised:
        await uow.fetch(COUNT)
    assert raised.value.connection_invalidated
    assert is_transient_db_error(raised.value)
    return int(pid.pid)


async def test_a_lost_connection_is_invalidated_not_pooled_again(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("a server-side disconnect: PostgreSQL only")
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(INSERT, row_values("before", 1))
        await lose_the_connection(db, uow)
    async with UnitOfWork(db, "points", read_only=True) as uow:  # a fresh connection; nothing was committed
        counted = await uow.fetchrow(COUNT)
        assert counted is not None and counted[0] == 0


IN_TRANSACTION = sa.select(sa.func.txid_current_if_assigned().label("txid"), sa.func.now().label("now"))


def checked_out(db: Database) -> int:
    pool = db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


def postgres_only(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("read-only units take their fast-path connection from the pool on PostgreSQL only")


async def test_a_read_only_unit_reads_on_one_pooled_autocommit_connection_without_a_session(db: Database) -> None:
    postgres_only(db)
    async with UnitOfWork(db, "points", read_only=True) as uow:
        first = await uow.fetchrow(PID)
        second = await uow.fetchrow(PID)
        assert first is not None and second is not None and first.pid == second.pid  # one connection, reused
        assert checked_out(db) == 1
        assert uow._session is None  # no session was made for the fast path
        # autocommit: no transaction stays open between statements (each gets its own now())
        a, b = await uow.fetchrow(IN_TRANSACTION), await uow.fetchrow(IN_TRANSACTION)
        assert a is not None and b is not None and a.now < b.now
    assert checked_out(db) == 0
    # The connection went back out of autocommit: a writing unit on it rolls back what it did not commit.
    async with UnitOfWork(db, "points") as uow:
        writer = await uow.fetchrow(PID)
        assert writer is not None and writer.pid == first.pid  # the same pooled connection
        await uow.execute(INSERT, row_values("uncommitted", 1))
    async with UnitOfWork(db, "points", read_only=True) as uow:
        counted = await uow.fetchrow(COUNT)
        assert counted is not None and counted[0] == 0


async def test_a_read_only_unit_holds_one_connection_even_when_it_asks_for_a_session(db: Database) -> None:
    postgres_only(db)
    async with UnitOfWork(db, "points") as uow:
        await uow.execute(INSERT, row_values("seen", 1))
        await uow.commit()
    async with UnitOfWork(db, "points", read_only=True) as uow:
        fast = await uow.fetchrow(PID)
        assert fast is not None and checked_out(db) == 1
        slow = (await uow.session.execute(PID)).one()
        # the fast path's connection went back when the session came: one connection per unit
        assert checked_out(db) == 1
        via_session = (await uow.session.execute(COUNT)).scalar_one()
        counted = await uow.fetchrow(COUNT)
        again = await uow.fetchrow(PID)
        assert counted is not None and counted[0] == via_session == 1
        assert again is not None and again.pid == slow.pid  # later fast-path statements run on the session's
        await uow.rollback()  # nothing to roll back; the unit goes on reading
        assert (await uow.fetchrow(COUNT)) is not None
        with pytest.raises(RuntimeError):
            await uow.commit()
    assert checked_out(db) == 0


async def test_read_only_units_mixing_fast_path_and_session_cannot_starve_the_pool(db: Database) -> None:
    """More such units at once than the pool holds: each would wait forever for a second connection if it kept
    its first."""
    postgres_only(db)
    size = db.engine.sync_engine.pool.size() + db.engine.sync_engine.pool._max_overflow  # type: ignore[attr-defined]

    async def read() -> int:
        async with UnitOfWork(db, "points", read_only=True) as uow:
            await uow.fetchrow(PID)
            await asyncio.sleep(0.05)  # every unit holds its fast-path connection before any asks for a session
            return int((await uow.session.execute(COUNT)).scalar_one())

    async with asyncio.timeout(20):
        counts = await asyncio.gather(*(read() for _ in range(size + 5)))
    assert len(counts) == size + 5
    assert checked_out(db) == 0


async def test_more_units_at_once_than_the_pool_holds_wait_for_its_connections_instead_of_opening_more(
    db: Database,
) -> None:
    """With no overflow (the default), load above the pool size queues for the pooled connections: a connection
    opened beyond the pool would be closed at once when given back, so every request past the pool would pay a
    new PostgreSQL backend."""
    postgres_only(db)
    pool = db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    size = pool.size()
    opened: list[object] = []
    sa.event.listen(db.engine.sync_engine, "connect", lambda conn, record: opened.append(conn))
    most_at_once = 0

    async def read() -> int:
        nonlocal most_at_once
        async with UnitOfWork(db, "points", read_only=True) as uow:
            row = await uow.fetchrow(PID)
            most_at_once = max(most_at_once, checked_out(db))
            await asyncio.sleep(0.01)
            assert row is not None
            return int(row.pid)

    async with asyncio.timeout(30):
        for _ in range(3):  # three waves: overflow connections would be opened again in each
            pids = await asyncio.gather(*(read() for _ in range(size * 3)))
    assert most_at_once == size
    assert len(opened) <= size and len(set(pids)) <= size
    assert checked_out(db) == 0


async def test_a_read_only_units_lost_connection_is_invalidated_not_pooled_again(db: Database) -> None:
    postgres_only(db)
    async with UnitOfWork(db, "points", read_only=True) as uow:
        lost = await lose_the_connection(db, uow)
        assert checked_out(db) == 0  # handed back at once, as a slot to reconnect
        counted = await uow.fetchrow(COUNT)  # the unit goes on, on a fresh connection
        assert counted is not None and counted[0] == 0
    assert checked_out(db) == 0
    async with UnitOfWork(db, "points", read_only=True) as uow:
        fresh = await uow.fetchrow(PID)
        assert fresh is not None and fresh.pid != lost


async def test_a_read_only_unit_cancelled_mid_statement_drops_its_connection(db: Database) -> None:
    postgres_only(db)
    sleep = sa.select(sa.func.pg_sleep(5))
    started = asyncio.Event()

    async def read() -> None:
        async with UnitOfWork(db, "points", read_only=True) as uow:
            await uow.fetchrow(PID)
            started.set()
            await uow.fetch(sleep)

    task = asyncio.create_task(read())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked_out(db) == 0
    async with UnitOfWork(db, "points", read_only=True) as uow:  # no "another operation is in progress"
        counted = await uow.fetchrow(COUNT)
        assert counted is not None and counted[0] == 0
