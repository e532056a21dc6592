"""List filters written once each, for statements built once per *shape* (see docs/platform.md → Hot paths).

A list endpoint with a dozen optional filters must not build a ``select()`` per request (building and
cache-keying it costs more than running it), so its statements are cached per shape: which filters apply, in
which variant. Each :class:`Filter` says, in one place, when it applies (``key``: ``None`` when it does not,
else a hashable variant such as ``True`` or ``"staff"``), its WHERE clause(s) for that variant with named
bound parameters (``clause``), and the values of those parameters (``params``). :class:`Filters` derives the
shape (the tuple of keys), caches the clauses per shape and collects the parameters::

    ISSUE_FILTERS = Filters(
        Filter(lambda r: r.status or None, lambda _: column.in_(sa.bindparam("statuses", expanding=True)),
               lambda r: {"statuses": r.status}),
        equals(ISSUES.c.category, lambda r: r.category),
    )
    shape, params = ISSUE_FILTERS.query(request)
    statement = list_statement(shape)  # functools.cache: sa.select(...).where(*ISSUE_FILTERS.where(shape))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

R = TypeVar("R")
Clauses = sa.ColumnElement[bool] | Sequence[sa.ColumnElement[bool]]
Shape = tuple[Hashable | None, ...]


def _no_params(_: Any) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Filter(Generic[R]):
    key: Callable[[R], Hashable | None]
    clause: Callable[[Any], Clauses]  # given the key (the variant), built once per shape
    params: Callable[[R], Mapping[str, Any]] = _no_params


def equals(column: sa.ColumnElement[Any], value: Callable[[R], Any], name: str | None = None) -> Filter[R]:
    """``column = :name`` when ``value(request)`` is not None (the parameter is named after the column)."""
    param = name or str(column.key)
    return Filter(
        key=lambda r: True if value(r) is not None else None,
        clause=lambda _: column == sa.bindparam(param, type_=column.type),
        params=lambda r: {param: value(r)},
    )


class Filters(Generic[R]):
    def __init__(self, *filters: Filter[R]) -> None:
        self.filters = filters
        self._where = functools.cache(self._build)

    def shape(self, request: R) -> Shape:
        return tuple(f.key(request) for f in self.filters)

    def params(self, request: R, shape: Shape) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, key in zip(self.filters, shape, strict=True):
            if key is not None:
                out.update(f.params(request))
        return out

    def query(self, request: R) -> tuple[Shape, dict[str, Any]]:
        """The request's shape (the cache key of its statement) and the values of its parameters."""
        shape = self.shape(request)
        return shape, self.params(request, shape)

    def where(self, shape: Shape) -> tuple[sa.ColumnElement[bool], ...]:
        """The WHERE clauses of ``shape``, built once per shape (same objects each time: a statement built from
        them and cached per shape compiles once)."""
        return self._where(shape)

    def _build(self, shape: Shape) -> tuple[sa.ColumnElement[bool], ...]:
        out: list[sa.ColumnElement[bool]] = []
        for f, key in zip(self.filters, shape, strict=True):
            if key is None:
                continue
            made = f.clause(key)
            out.extend(made if isinstance(made, Sequence) else [made])
        return tuple(out)


Q = TypeVar("Q", bound=sa.Select[Any])


def where_given(query: Q, *conditions: tuple[Any, Any]) -> Q:
    """``query`` narrowed by ``column == value`` for each ``(column, value)`` whose value is given: an optional
    list filter that is absent (``None``) or empty (``?community=``) does not narrow; ``False`` and ``0`` do.
    For the plain list queries; a hot path caches its statements per shape with :class:`Filters` instead."""
    for column, value in conditions:
        if value is not None and value != "":
            query = query.where(column == value)
    return query
