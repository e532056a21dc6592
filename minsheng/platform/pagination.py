"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select

from minsheng.platform.errors import Problem, invalid
from minsheng.platform.inputs import CURSOR_MAX_LENGTH, MAX_DAY, MIN_DAY, Cursor, aware_utc

T = TypeVar("T")
U = TypeVar("U")
QueryT = TypeVar("QueryT", bound=Select[*tuple[Any, ...]])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageRequest(BaseModel):
    """Which page of a list: at most ``limit`` items, after ``cursor`` (the ``next_cursor`` of the page before).

    A route takes it as ``page: PageQuery`` (the query parameters ``limit`` and ``cursor``) and hands it to the
    use case, which hands it to ``keyset_page`` / ``Keyset``; a list with another size (issues' catalogue)
    subclasses it with its own ``limit`` field."""

    model_config = ConfigDict(frozen=True)

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None


# A route parameter: ``page: PageQuery`` reads ``?limit=&cursor=`` (422 on a limit out of range). It has no
# default, so in a route it stands before parameters with defaults or after a ``*``.
PageQuery = Annotated[PageRequest, Query()]


class ListFilters(BaseModel):
    """The base of a list's filters, read from the query string as one model: ``filters:
    Annotated[<Thing>Filters, Query()]`` in the route, declared in the service's ``models.py``."""

    model_config = ConfigDict(frozen=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        """The same page (same cursor) with each item converted, e.g. ``page.map(from_row(TeamPublic))``."""
        return self.with_items([convert(item) for item in self.items])

    def with_items(self, items: list[U]) -> Page[U]:
        """The same page (same cursor) with these items: where the conversion takes the whole page at once,
        e.g. ``found.with_items(await accounts.account_views(uow, cipher, found.items))``."""
        return Page[Any](items=items, next_cursor=self.next_cursor)


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(
        [v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, UUID) else v for v in values],
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid_cursor(message: str) -> Problem:
    return invalid(
        "invalid_cursor", "Invalid cursor", "Use the next_cursor of a previous page.", field="cursor", message=message
    )


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """Decode a cursor made by ``encode_cursor``; ``types`` (datetime, date, UUID, int, str) say how to read it.

    The one decoder of every list: anything that is not exactly what ``encode_cursor`` makes answers 422
    ``invalid_cursor``. The cursor is bounded in length and must decode to a flat JSON array of scalars of
    the expected kinds, checked before parsing, so no input recurses (nested arrays), overflows (year 1 at
    +14:00) or reaches a query as a value of another type."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > CURSOR_MAX_LENGTH:
        raise _invalid_cursor("empty or too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise _invalid_cursor("not base64url-encoded UTF-8") from exc
    # A flat array: exactly one opening bracket (strings in our cursors never hold brackets or braces).
    if not text.startswith("[") or text.count("[") != 1 or "{" in text:
        raise _invalid_cursor("wrong shape")
    try:
        values = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid_cursor("not JSON") from exc
    if not isinstance(values, list) or len(values) != len(types):
        raise _invalid_cursor("wrong shape")
    out: list[Any] = []
    try:
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                if not isinstance(value, str):
                    raise ValueError("expected a time")
                out.append(aware_utc(datetime.fromisoformat(value)))
            elif kind is date:
                if not isinstance(value, str):
                    raise ValueError("expected a date")
                day = date.fromisoformat(value)
                if not MIN_DAY <= day <= MAX_DAY:
                    raise ValueError("date out of range")
                out.append(day)
            elif kind is UUID:
                if not isinstance(value, str):
                    raise ValueError("expected an id")
                out.append(UUID(value))
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
                    raise ValueError("expected a whole number")
                out.append(value)
            elif kind is str:
                if not isinstance(value, str) or "\x00" in value:
                    raise ValueError("expected text")
                out.append(value)
            else:
                out.append(kind(value))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _invalid_cursor(str(exc)) from exc
    return tuple(out)


def page_of(rows: list[T], limit: int, cursor_of: Any) -> Page[T]:
    """``rows`` was fetched with ``limit + 1``: the extra row only tells whether there is a next page."""
    has_more = len(rows) > limit
    items = rows[:limit]
    return Page[T](items=items, next_cursor=cursor_of(items[-1]) if has_more and items else None)


@dataclass(frozen=True)
class Keyset:
    """A list's order and its cursor in one place: the columns it is sorted on (a unique last one, usually the
    id), newest first unless ``descending`` is false (or a direction per column), and the kinds
    ``decode_cursor`` reads them as.

    ``keyset.query(select, page)`` adds the "after the cursor" condition, the order and ``limit + 1``;
    ``keyset.page(rows, page)`` cuts the extra row off and makes the next cursor from the last row's values."""

    columns: tuple[Any, ...]
    kinds: tuple[type, ...] = (datetime, UUID)
    descending: bool | tuple[bool, ...] = True

    @classmethod
    def by_id(cls, model: Any) -> Keyset:
        """In id order: creation order, as every id is a UUIDv7."""
        return cls((model.id,), kinds=(UUID,), descending=False)

    def query(self, query: QueryT, page: PageRequest) -> QueryT:
        directions = self._directions()
        if page.cursor:
            query = query.where(self._after(directions, decode_cursor(page.cursor, *self.kinds)))
        order = [sa.desc(c) if down else sa.asc(c) for c, down in zip(self.columns, directions, strict=True)]
        return query.order_by(*order).limit(page.limit + 1)

    def _directions(self) -> tuple[bool, ...]:
        if isinstance(self.descending, bool):
            return (self.descending,) * len(self.columns)
        return self.descending

    def _after(self, directions: tuple[bool, ...], values: tuple[Any, ...]) -> sa.ColumnElement[bool]:
        if len(set(directions)) == 1:
            # A row-value comparison: an index range condition on PostgreSQL and SQLite alike.
            position, after = sa.tuple_(*self.columns), sa.tuple_(*values)
            return position < after if directions[0] else position > after
        # Mixed directions have no row-value form: (a < x) OR (a = x AND b > y) OR (a = x AND b = y AND c > z) …
        alternatives = []
        for i, (column, down) in enumerate(zip(self.columns, directions, strict=True)):
            ties = [c == v for c, v in zip(self.columns[:i], values[:i], strict=True)]
            alternatives.append(sa.and_(*ties, column < values[i] if down else column > values[i]))
        return sa.or_(*alternatives)

    def page(self, rows: list[T], page: PageRequest, item: Callable[[T], Any] = lambda row: row) -> Page[T]:
        """``item`` picks the object that holds the columns when a row is a tuple (``lambda r: r[0]``)."""
        names = [c.key for c in self.columns]
        return page_of(rows, page.limit, lambda row: encode_cursor(*(getattr(item(row), n) for n in names)))


async def keyset_page(session: Any, query: Select[Any], keyset: Keyset, page: PageRequest) -> Page[Any]:
    """One page of ORM objects (``query`` selects one entity)."""
    rows = list((await session.execute(keyset.query(query, page))).scalars())
    return keyset.page(rows, page)
