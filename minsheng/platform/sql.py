"""Helpers for SQLAlchemy Core statements on the hot paths (see docs/platform.md → Hot paths)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel


def one_of(column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """``column IN (…)`` for a fixed set of values (statuses, kinds). SQLAlchemy renders ``in_(list)`` as an
    "expanding" parameter and re-renders the statement's SQL on every execution (~150 µs here); one bound
    literal per value keeps the compiled SQL as it is."""
    return column.in_([sa.literal(v, type_=column.type) for v in values])


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a SQLModel table class, typed (``Model.__table__`` is invisible to type checkers)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table), f"{model.__name__} is not a table model"
    return table


def json_list_holds(column: Any, value: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """``value`` is one of the strings in the JSON list ``column`` (a ``JSONType`` column: roles, scopes): JSONB
    containment on PostgreSQL (a GIN index can serve it); on SQLite the element as ``json.dumps`` wrote it into the
    column's text (quoted, so ``"staff"`` does not match ``"staff_lead"``)."""
    if postgres:
        return column.op("@>")(sa.cast([value], JSONB))  # type: ignore[no-any-return]
    return sa.func.instr(sa.cast(column, sa.Text), json.dumps(value)) > 0
