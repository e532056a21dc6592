"""Duplicates: a report of a problem already open nearby joins that issue instead of opening another. The
search, the advisory locks that keep two simultaneous reports of one fire from both opening an issue, and
the look-up of the issue a report from another service already became."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from minsheng.contracts.base import Origin
from minsheng.platform.coords import bounding_box, distance_m
from minsheng.platform.sql import one_of
from minsheng.platform.uow import UnitOfWork
from services.issues.access import ISSUES, REPORTERS
from services.issues.config import IssuesSettings
from services.issues.models import OPEN_STATUSES, Category, Issue


def dedupes(category: Category, lat: float | None, lng: float | None) -> bool:
    """Whether a report is checked for duplicates: the category says so and the report has a point."""
    return category.dedupe and lat is not None and lng is not None


def dedupe_lock_keys(category: str, lat: float, lng: float, radius_m: float) -> list[str]:
    """The advisory locks that serialise the intake of reports which could be duplicates of each other: one per
    grid cell the report's search box touches, on a grid of cells at least as wide as that box up to 60°N (so
    at most four). Two reports within the radius of each other always share one — the cell of either one's
    point lies in the other's box — while reports of one category elsewhere go ahead side by side."""
    cell = 4 * radius_m / 111_320.0  # degrees; a box is at most cell/2 wide in longitude below 60°
    south, north, west, east = bounding_box(lat, lng, radius_m)
    rows = range(math.floor(south / cell), math.floor(north / cell) + 1)
    columns = range(math.floor(west / cell), math.floor(east / cell) + 1)
    return sorted(f"issues-dedupe:{category}:{r}:{c}" for r in rows for c in columns)


# Taken in the keys' order, so two intakes never wait for each other crosswise.
_lock_cells = (
    sa.select(sa.func.unnest(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String()))).label("key"))
    .order_by("key")
    .subquery("cells")
)
_DEDUPE_LOCK = sa.select(sa.func.count(sa.func.pg_advisory_xact_lock(sa.func.hashtext(_lock_cells.c.key))))


@functools.cache
def _nearby_open_issues(include_private: bool) -> sa.Select[Any]:
    """Open issues of a category reported since a time, inside a bounding box, newest first (at most 50)."""
    c = ISSUES.c
    query = sa.select(c.id, c.latitude, c.longitude).where(
        c.category == sa.bindparam("category"),
        c.created_at >= sa.bindparam("since", type_=c.created_at.type),
        one_of(c.status, [s.value for s in OPEN_STATUSES]),
        c.latitude.between(sa.bindparam("south"), sa.bindparam("north")),
        c.longitude.between(sa.bindparam("west"), sa.bindparam("east")),
    )
    if not include_private:
        query = query.where(c.is_public.is_(True))
    return query.order_by(c.created_at.desc()).limit(50)


async def find_duplicate(
    uow: UnitOfWork,
    category: str,
    lat: float,
    lng: float,
    now: datetime,
    cfg: IssuesSettings,
    *,
    include_private: bool = False,
    locked: bool = False,
) -> Issue | None:
    """The nearest open issue of the same category reported within the radius and time window. Private issues
    (a household's need) only absorb reports from staff-side channels: a resident's report must not make them
    a participant of someone else's private matter."""
    if uow.db.is_postgres and not locked:
        # Two simultaneous reports of one fire must not both open an issue.
        await uow.execute(_DEDUPE_LOCK, {"keys": dedupe_lock_keys(category, lat, lng, cfg.dedupe_radius_m)})
    south, north, west, east = bounding_box(lat, lng, cfg.dedupe_radius_m)
    rows = await uow.fetch(
        _nearby_open_issues(include_private),
        {
            "category": category,
            "since": now - timedelta(hours=cfg.dedupe_window_hours),
            "south": south,
            "north": north,
            "west": west,
            "east": east,
        },
    )
    best: tuple[float, UUID] | None = None
    for ident, issue_lat, issue_lng in map(tuple, rows):
        d = distance_m(lat, lng, issue_lat, issue_lng)
        if d <= cfg.dedupe_radius_m and (best is None or d < best[0]):
            best = (d, ident)
    # Only a duplicate is loaded as an ORM object (attach changes it); most reports are new issues.
    return await uow.session.get(Issue, best[1]) if best else None


_ISSUE_FOR_ORIGIN = sa.select(REPORTERS.issue_id).where(
    REPORTERS.origin_service == sa.bindparam("service"),
    REPORTERS.origin_kind == sa.bindparam("kind"),
    REPORTERS.origin_id == sa.bindparam("id"),
)
# The same, taking the report's dedupe locks in the same round trip (the duplicate search comes after them).
_LOCK_AND_ISSUE_FOR_ORIGIN = sa.select(_ISSUE_FOR_ORIGIN.scalar_subquery(), _DEDUPE_LOCK.scalar_subquery())


async def issue_for_origin(uow: UnitOfWork, origin: Origin, *, lock_keys: list[str] | None = None) -> UUID | None:
    """The issue a report from another service became. With ``lock_keys`` (PostgreSQL) it also takes those
    dedupe locks, which ``intake`` then need not take again."""
    params = {"service": origin.service, "kind": origin.kind, "id": origin.id}
    if lock_keys and uow.db.is_postgres:
        found = await uow.fetchrow(_LOCK_AND_ISSUE_FOR_ORIGIN, {**params, "keys": lock_keys})
    else:
        found = await uow.fetchrow(_ISSUE_FOR_ORIGIN, params)
    return found[0] if found is not None else None
