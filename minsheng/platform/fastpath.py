"""The PostgreSQL fast path: a SQLAlchemy Core statement compiled once, run on the asyncpg connection under the
unit of work's session — or, in a read-only unit, under the pool connection it checks out without a session
(see docs/platform.md → Hot paths).

A query through ``AsyncSession.execute`` costs ~500 µs of CPU here (the greenlet hop, the execution context,
the result machinery); the same query on asyncpg costs ~50 µs. :class:`Plan` keeps what SQLAlchemy works out
per execution — the SQL with ``$n`` placeholders, the order of the bound parameters with their bind processors
(JSON, enums, the encrypted-field TypeDecorators) and the result columns with their result processors — so a
run is: build the argument list, ``conn.fetch`` (asyncpg's prepared-statement cache and row decoding), apply
the few result processors, wrap the records in SQLAlchemy ``Row`` objects (the same rows the SQLite path
returns). Driver errors are translated into SQLAlchemy's exceptions (``IntegrityError`` …), as the session
would raise them.

Statements with "expanding" parameters (``IN`` over a list) get one compiled form per list-length combination.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.engine.row import Row
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
# Each position of the driver's argument list: (parameter name, index in a list value or -1, processor)
# or, for a value fixed in the statement (``sa.literal``), (None, -1, value already processed).
Position = tuple[str | None, int, Any]

_MAX_PLANS = 2048


@dataclass(slots=True)
class Plan:
    sql: str
    positions: tuple[Position, ...]
    metadata: SimpleResultMetaData | None
    result_types: tuple[Any, ...]
    dialect: Dialect
    result_processors: tuple[Processor, ...] | None = None  # None when no column needs one
    # Column defaults SQLAlchemy computes in Python at execution (``Column(default=…)`` of a column the
    # statement does not set): such a statement keeps going through the session, which fills them in.
    via_session: bool = False
    resolved: bool = False  # result processors worked out (they depend on the column types PostgreSQL reports)

    async def resolve(self, driver: Any) -> None:
        """Work out the result processors from the columns' type OIDs, as SQLAlchemy does from the prepared
        statement's attributes (numeric vs float, …): once per plan, one extra prepare."""
        if self.metadata is not None:
            prepared = await driver.prepare(self.sql)
            oids = [a.type.oid for a in prepared.get_attributes()]
            procs = tuple(
                t._cached_result_processor(self.dialect, oid) for t, oid in zip(self.result_types, oids, strict=True)
            )
            self.result_processors = procs if any(p is not None for p in procs) else None
        self.resolved = True

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        args: list[Any] = []
        for name, index, extra in self.positions:
            if name is None:
                args.append(extra)
                continue
            value = params[name] if index < 0 else params[name][index]
            args.append(extra(value) if extra is not None and value is not None else value)
        return args

    def rows(self, records: Sequence[Any]) -> list[Row[Any]]:
        metadata = self.metadata
        if metadata is None:
            return []
        key_to_index = metadata._key_to_index
        processors = self.result_processors
        if processors is None:
            return [Row(metadata, None, key_to_index, r) for r in records]
        return [Row(metadata, None, key_to_index, _processed(processors, r)) for r in records]


def _processed(processors: tuple[Processor, ...], record: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(v if p is None or v is None else p(v) for p, v in zip(processors, record, strict=True))


class Plans:
    """The compiled plans of one dialect, keyed by statement object (hot statements are built once, at import
    or in a ``functools.cache``: a statement built per call would compile per call, as with the session)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._plans: dict[tuple[int, tuple[int, ...]], tuple[sa.Executable, Plan]] = {}
        self._compiled: dict[int, tuple[sa.Executable, SQLCompiler, tuple[str, ...]]] = {}

    def plan(self, statement: sa.Executable, params: Mapping[str, Any]) -> Plan:
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            if len(self._compiled) > _MAX_PLANS:
                self._compiled.clear()
                self._plans.clear()
            assert isinstance(statement, sa.ClauseElement), "the fast path runs Core statements"
            sql_compiler = statement.compile(dialect=self.dialect)
            assert isinstance(sql_compiler, SQLCompiler)
            expanding = tuple(
                name
                for bind, name in sql_compiler.bind_names.items()
                if bind.expanding and name in (sql_compiler.positiontup or ())
            )
            compiled = self._compiled[id(statement)] = (statement, sql_compiler, expanding)
        _, sql_compiler, expanding = compiled
        lengths = tuple(len(params[name]) for name in expanding)
        key = (id(statement), lengths)
        found = self._plans.get(key)
        if found is not None and found[0] is statement:
            return found[1]
        made = _make_plan(sql_compiler, expanding, params)
        self._plans[key] = (statement, made)
        return made


def _make_plan(compiled: SQLCompiler, expanding: tuple[str, ...], params: Mapping[str, Any]) -> Plan:
    dialect = compiled.dialect
    bind_processors: dict[str, Any] = dict(compiled._bind_processors)
    fixed = compiled.construct_params(dict(params), _check=False)
    element_of: dict[str, tuple[str, int]] = {}
    if expanding:
        state = compiled.construct_expanded_state(dict(params))
        sql, order = state.statement, list(state.positiontup or ())
        for name in expanding:
            for i in range(len(params[name])):
                element_of[f"{name}_{i + 1}"] = (name, i)
        bind_processors.update(state.processors)
    else:
        sql, order = compiled.string, list(compiled.positiontup or ())
    given = set(params)
    positions: list[Position] = []
    for name in order:
        processor = bind_processors.get(name)
        if name in element_of:
            parent, index = element_of[name]
            positions.append((parent, index, processor))
        elif name in given:
            positions.append((name, -1, processor))
        else:  # a value the statement carries (``sa.literal``, a bindparam with a value)
            value = fixed.get(name)
            positions.append((None, -1, processor(value) if processor is not None and value is not None else value))
    metadata, types = None, cast(tuple[Any, ...], ())
    if compiled._result_columns:
        columns = compiled._result_columns
        metadata = SimpleResultMetaData([c.keyname for c in columns])
        types = tuple(c.type for c in columns)
    via_session = bool(compiled.insert_prefetch or compiled.update_prefetch)
    return Plan(sql, tuple(positions), metadata, types, dialect, via_session=via_session)


def translate_error(adapter: Any, dialect: Dialect, sql: str, args: Sequence[Any], error: Exception) -> Exception:
    """The SQLAlchemy exception the session would have raised for the driver's ``error`` (IntegrityError …)."""
    try:
        adapter._handle_exception(error)  # raises the DBAPI-level (adapted) error
    except Exception as adapted:  # translating whatever the driver raised
        dbapi_error = dialect.loaded_dbapi.Error
        if isinstance(adapted, dbapi_error):
            return sa.exc.DBAPIError.instance(sql, list(args), adapted, dbapi_error)
        return adapted
    return error
