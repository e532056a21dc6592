"""Large data sets, fast: rows generated from a service's *current* SQLModel metadata and loaded with
PostgreSQL's binary COPY (asyncpg ``copy_records_to_table``) — about a million issue rows in well under a
minute here.

The generator follows the schema: every column of the table (as the migrated database has it) gets a value —
from the per-table recipe when there is one, else from the column's scalar default, else NULL when nullable,
else a plain value of its type. So a column someone adds tomorrow does not break it. Reusable by tests::

    from bench.datagen import copy_rows, ISSUE_RECIPE
    n = await copy_rows(conn, services.issues.models.metadata.tables["issues"], 10_000, ISSUE_RECIPE)
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from minsheng.platform.types import JSONType, UTCDateTime

Recipe = Mapping[str, Callable[[int], Any]]

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
COMMUNITIES = ["yunxing", "dongyan", "yuntai", "yunhe", "gangcheng", "xinhua", "pingcheng"]
COMPOUNDS = [f"compound-{i:02d}" for i in range(89)]  # 89 compounds in 7 communities
CATEGORIES = [
    "road",
    "lighting",
    "sanitation",
    "greenery",
    "noise",
    "water_leak",
    "parking",
    "elevator",
    "fire",
    "gas_leak",
    "other",
]
STATUSES = ["submitted"] * 5 + ["accepted"] * 10 + ["verified"] * 10 + ["resolved"] * 70 + ["rejected"] * 5
CHANNELS = ["resident"] * 6 + ["staff", "grid_worker", "rider", "patrol"]


def time_ordered_uuid(i: int, at: datetime) -> uuid.UUID:
    """A UUIDv7-shaped id for row ``i`` made at ``at``: ordered like the platform's ``uuid7()``, unique by i."""
    ms = int(at.timestamp() * 1000)
    rand = random.getrandbits(30)
    value = (ms << 80) | (0x7 << 76) | ((i & 0xFFF) << 64) | (0b10 << 62) | ((i >> 12) << 30) | rand
    return uuid.UUID(int=value)


def spread(n: int, days: int = 730) -> Callable[[int], datetime]:
    """Row i's creation time: n rows spread evenly over the last ``days`` days before 2026."""
    step = days * 86400 / max(n, 1)
    return lambda i: EPOCH + timedelta(seconds=i * step)


def _issue_enums() -> tuple[list[str], list[str]]:
    """The issues service's own status and channel values (its models change; read them, don't copy them):
    statuses weighted like a county's — mostly closed, some open."""
    try:
        from services.issues.models import Channel, IssueStatus

        values = [s.value for s in IssueStatus]
        channels = [c.value for c in Channel if c.value != "open311"] or CHANNELS
    except Exception:
        return STATUSES, CHANNELS
    closed = [v for v in values if v in ("resolved", "confirmed")] or values[:1]
    weighted = [v for v in values for _ in range(1 if v not in closed else 0)]
    statuses = weighted * 2 + closed * max(1, (len(weighted) * 8) // max(len(closed), 1))
    return statuses, ["resident"] * 6 + channels


def issue_recipe(n: int, reporters: int = 50_000, categories: list[str] | None = None) -> Recipe:
    """Issues spread over two years, 7 communities, 89 compounds, mostly resolved; ``categories`` from the
    service's catalogue when it has one."""
    at = spread(n)
    cats = categories or CATEGORIES
    statuses, channels = _issue_enums()
    return {
        "id": lambda i: time_ordered_uuid(i, at(i)),
        "title": lambda i: f"{cats[i % len(cats)].replace('_', ' ').capitalize()} problem #{i}",
        "description": lambda i: "A resident reports a problem that needs the community's attention. " * 2,
        "category": lambda i: cats[(i * 7) % len(cats)],
        "latitude": lambda i: 40.0 + (i % 1000) / 10000,
        "longitude": lambda i: 112.7 + (i % 997) / 10000,
        "address": lambda i: f"Building {i % 30 + 1}, {COMPOUNDS[i % 89]}",
        "community": lambda i: COMMUNITIES[(i % 89) % 7],
        "compound": lambda i: COMPOUNDS[i % 89],
        "channel": lambda i: channels[i % len(channels)],
        "status": lambda i: statuses[(i * 31) % len(statuses)],
        "urgent": lambda i: i % 50 == 0,
        "is_public": lambda i: i % 10 != 0,
        "photo_urls": lambda i: "[]",
        "reporter": lambda i: f"resident-{(i * 13) % reporters}",
        "created_at": at,
        "updated_at": at,
    }


ISSUE_RECIPE = issue_recipe(1_000_000)


def household_recipe(n: int) -> Recipe:
    """Households in 7 communities / 89 compounds; buildings are made as parent rows (see ``copy_rows``)."""
    at = spread(n, days=365)
    return {
        "id": lambda i: time_ordered_uuid(i, at(i)),
        "community": lambda i: COMMUNITIES[(i % 89) % 7],
        "compound": lambda i: COMPOUNDS[i % 89],
        "unit": lambda i: f"{i % 4 + 1}",
        "room": lambda i: f"{i}",  # (building, unit, room) is unique: room = the row number
        "address": lambda i: f"Building {i % 30 + 1}, {COMPOUNDS[i % 89]}",
        "tier": lambda i: "standard",
        "cadence_days": lambda i: 90,
        "created_at": at,
        "updated_at": at,
    }


def _plain(column: sa.Column[Any], i: int) -> Any:
    """A value of the column's type for row i (only used for NOT NULL columns without a recipe/default)."""
    t: Any = column.type
    if isinstance(t, sa.TypeDecorator) and not isinstance(t, JSONType | UTCDateTime):
        t = t.impl  # e.g. SQLModel's AutoString → String
    if isinstance(t, sa.Uuid):
        return time_ordered_uuid(i, EPOCH + timedelta(seconds=i))
    if isinstance(t, JSONType | sa.JSON):
        return "[]"
    if isinstance(t, UTCDateTime | sa.DateTime):
        return EPOCH + timedelta(seconds=i)
    if isinstance(t, sa.Date):
        return date(2024, 1, 1) + timedelta(days=i % 3650)
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.Integer):
        return 0
    if isinstance(t, sa.Float | sa.Numeric):
        return 0
    if isinstance(t, sa.String):
        length = getattr(t, "length", None) or 40
        return f"{column.name}-{i}"[:length]
    return None


def _value_maker(column: sa.Column[Any], recipe: Recipe) -> Callable[[int], Any]:
    if column.name in recipe:
        make = recipe[column.name]
        if isinstance(column.type, JSONType | sa.JSON):
            return lambda i: _json_text(make(i))
        return make
    default = column.default
    is_json = isinstance(column.type, JSONType | sa.JSON)
    if default is not None and getattr(default, "is_scalar", False):
        value = default.arg  # type: ignore[attr-defined]
        value = getattr(value, "value", value)  # StrEnum members → their string
        if is_json:
            text = json.dumps(value)
            return lambda i: text
        return lambda i: value
    if default is not None and getattr(default, "is_callable", False):
        factory = default.arg  # type: ignore[attr-defined]  # SQLAlchemy wraps it to take a context
        if is_json:  # default_factory=dict / list: the same empty value every row
            text = json.dumps(factory(None))
            return lambda i: text
        if isinstance(column.type, UTCDateTime | sa.DateTime):
            return lambda i: EPOCH + timedelta(seconds=i)
        return lambda i: factory(None)
    if column.nullable:
        return lambda i: None
    if is_json:
        return lambda i: "[]"
    return lambda i: _plain(column, i)


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def table_columns(conn: Any, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1", table
    )
    return [r["column_name"] for r in rows]


RECIPES: dict[str, Callable[[int], Recipe]] = {}  # table name → recipe for n rows (parents use them too)


def building_recipe(n: int) -> Recipe:
    return {
        "name": lambda i: f"Building {i % 30 + 1}",
        "community": lambda i: COMMUNITIES[(i % 89) % 7],
        "compound": lambda i: COMPOUNDS[i % 89],
        "latitude": lambda i: 40.0 + (i % 1000) / 10000,
        "longitude": lambda i: 112.7 + (i % 997) / 10000,
    }


RECIPES.update(issues=issue_recipe, households=household_recipe, buildings=building_recipe)


async def copy_rows(
    conn: Any,
    table: sa.Table,
    n: int,
    recipe: Recipe | None = None,
    *,
    start: int = 0,
    batch: int = 50_000,
    parents: int | None = None,
) -> int:
    """COPY ``n`` generated rows (indices ``start``…) into ``table`` over the asyncpg connection ``conn``.

    Only the columns the database actually has are filled (migrations may lag the models, or lead them).
    A NOT NULL foreign key without a recipe gets parent rows made first (``parents`` of them, default
    n/40, at most 5,000; generated the same way, recursively) and its rows spread over them."""
    in_db = set(await table_columns(conn, table.name))
    if not in_db:
        raise LookupError(f"table {table.name} does not exist in this database")
    recipe = dict(recipe or {})
    columns = [c for c in table.columns if c.name in in_db]
    for c in columns:
        if c.name in recipe or c.nullable or not c.foreign_keys:
            continue
        fk = next(iter(c.foreign_keys))
        target = fk.column.table
        count = parents or max(1, min(n // 40, 5_000))
        await copy_rows(conn, target, count, RECIPES.get(target.name, lambda k: {})(count))
        keys = [r[0] for r in await conn.fetch(f'SELECT "{fk.column.name}" FROM "{target.name}"')]
        recipe[c.name] = lambda i, keys=keys: keys[i % len(keys)]  # type: ignore[misc]
    makers = [_value_maker(c, recipe) for c in columns]
    names = [c.name for c in columns]
    done = 0
    while done < n:
        count = min(batch, n - done)
        records = [tuple(m(i) for m in makers) for i in range(start + done, start + done + count)]
        await conn.copy_records_to_table(table.name, records=records, columns=names)
        done += count
    return done


async def connect(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.connect(dsn)
