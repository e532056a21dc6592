"""The monthly leaderboards (``/points/leaderboards/{by}``): net points from the ledger, ranked by team,
community or rider, with the calling rider's own row. Use cases: take a unit of work, never commit."""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from minsheng.platform.privacy import mask_name
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.points import config
from services.points.models import EntryKind, Leaderboard, LeaderboardFilters, LeaderboardRow, Rider, Team
from services.points.statements import ENTRIES, parse_month


async def leaderboard(
    uow: UnitOfWork, *, by: str, filters: LeaderboardFilters, limit: int = 20, rider: Rider | None = None
) -> Leaderboard:
    """Net points earned in a local month (earned minus reversed), ranked by team, community or rider."""
    month = parse_month(filters.month)
    start, end = config.get().month_bounds(month)
    riders: sa.Table = table_of(Rider)
    teams: sa.Table = table_of(Team)
    points = sa.func.sum(ENTRIES.c.amount).label("points")
    members = sa.func.count(sa.distinct(ENTRIES.c.rider_id)).label("riders")
    base = ENTRIES.join(riders, riders.c.id == ENTRIES.c.rider_id)
    where: list[Any] = [
        ENTRIES.c.kind.in_([EntryKind.earned.value, EntryKind.reversed.value]),
        ENTRIES.c.created_at >= start,
        ENTRIES.c.created_at < end,
    ]
    if filters.community is not None:
        where.append(riders.c.community == filters.community)
    if filters.team_id is not None:
        where.append(riders.c.team_id == filters.team_id)
    if by == "team":
        query = (
            sa.select(teams.c.id.label("key"), teams.c.name.label("name"), points, members)
            .select_from(base.join(teams, teams.c.id == riders.c.team_id))
            .group_by(teams.c.id, teams.c.name)
        )
    elif by == "community":
        query = (
            sa.select(riders.c.community.label("key"), riders.c.community.label("name"), points, members)
            .select_from(base)
            .where(riders.c.community.is_not(None))
            .group_by(riders.c.community)
        )
    else:
        query = (
            sa.select(riders.c.id.label("key"), riders.c.name.label("name"), points, members)
            .select_from(base)
            .group_by(riders.c.id, riders.c.name)
        )
    board = query.where(*where)
    rows = (await uow.session.execute(board.order_by(sa.desc("points"), sa.asc("key")).limit(limit))).all()

    def row(rank: int, r: Any) -> LeaderboardRow:
        name = mask_name(r.name) if by == "rider" else r.name
        return LeaderboardRow(rank=rank, key=str(r.key), name=name, points=int(r.points or 0), riders=int(r.riders))

    items = [row(i + 1, r) for i, r in enumerate(rows)]
    you = await _own_row(uow, board, _own_key(rider, by), row) if rider is not None else None
    return Leaderboard(
        month=f"{month:%Y-%m}", by=by, community=filters.community, team_id=filters.team_id, items=items, you=you
    )


def _own_key(rider: Rider, by: str) -> Any:
    return {"rider": rider.id, "team": rider.team_id, "community": rider.community}[by]


async def _own_row(
    uow: UnitOfWork, board: sa.Select[Any], key: Any, row: Callable[[int, Any], LeaderboardRow]
) -> LeaderboardRow | None:
    """The row of ``key`` on ``board`` and its rank in the board's order (more points first, then by key)."""
    if key is None:
        return None
    groups = board.subquery()
    own = (await uow.session.execute(sa.select(groups).where(groups.c.key == key))).one_or_none()
    if own is None:
        return None
    ahead = sa.or_(groups.c.points > own.points, sa.and_(groups.c.points == own.points, groups.c.key < key))
    before = (await uow.session.execute(sa.select(sa.func.count()).select_from(groups).where(ahead))).scalar_one()
    return row(before + 1, own)
