"""The coverage figures: households visited in the window, needs open and closed, per compound, community, worker
and visiting round.

Coverage is computed per compound in a few grouped queries (households, visits in the window, needs) and
rolled up to communities in Python; per worker it goes through the active assignments. Medians of days to
close are taken over the needs closed in the window.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.ids import as_utc
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer
from services.visits.config import start_of_local_day, today
from services.visits.models import (
    Community,
    Compound,
    Coverage,
    CoverageRow,
    GridAssignment,
    GridWorker,
    Household,
    Need,
    NeedStatus,
    Outcome,
    ProgressRow,
    RoundProgress,
    RoundPublic,
    Visit,
    VisitRound,
)

CLOSED = (NeedStatus.confirmed.value, NeedStatus.closed.value)
OPEN = (NeedStatus.open.value, NeedStatus.in_progress.value, NeedStatus.resolved.value, NeedStatus.escalated.value)
WORKING = (NeedStatus.open.value, NeedStatus.in_progress.value)


# --- coverage -----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    households: int = 0
    visited: int = 0
    attempted: int = 0
    overdue: int = 0
    needs_open: int = 0
    needs_overdue: int = 0
    needs_closed: int = 0
    durations: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("households", "visited", "attempted", "overdue", "needs_open", "needs_overdue", "needs_closed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.durations.extend(other.durations)

    def row(self, key: str, name: str) -> CoverageRow:
        return CoverageRow(
            key=key,
            name=name,
            households=self.households,
            visited=self.visited,
            visited_share=_share(self.visited, self.households),
            overdue_households=self.overdue,
            needs_open=self.needs_open,
            needs_overdue=self.needs_overdue,
            needs_closed=self.needs_closed,
            median_days_to_close=round(statistics.median(self.durations), 1) if self.durations else None,
        )


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _days(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86400


def _place_filter(viewer: Viewer, model: Any, community: str | None, compound: str | None) -> list[Any]:
    parts = [viewer.clause(model)]
    if community:
        parts.append(model.community == community)
    if compound:
        parts.append(model.compound == compound)
    return parts


async def by_compound(
    uow: UnitOfWork,
    viewer: Viewer,
    since: datetime,
    until: datetime,
    *,
    community: str | None = None,
    compound: str | None = None,
) -> dict[tuple[str, str], Tally]:
    day = today()
    h, v, n = table_of(Household), table_of(Visit), table_of(Need)
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    occupied = h.c.active_residents > 0
    where_h = [occupied, *_place_filter(viewer, Household, community, compound)]
    for comm, comp, total, overdue in (
        await uow.session.execute(
            sa.select(
                h.c.community, h.c.compound, sa.func.count(), sa.func.sum(sa.case((h.c.next_due_on < day, 1), else_=0))
            )
            .where(*where_h)
            .group_by(h.c.community, h.c.compound)
        )
    ).all():
        tallies[(comm, comp)].households, tallies[(comm, comp)].overdue = total, int(overdue or 0)
    for comm, comp, visited, attempted in (
        await uow.session.execute(
            sa.select(
                h.c.community,
                h.c.compound,
                sa.func.count(sa.distinct(sa.case((v.c.outcome == Outcome.visited.value, v.c.household_id)))),
                sa.func.count(sa.distinct(v.c.household_id)),
            )
            .select_from(v.join(h, h.c.id == v.c.household_id))
            .where(*where_h, v.c.visited_at >= since, v.c.visited_at < until)
            .group_by(h.c.community, h.c.compound)
        )
    ).all():
        tallies[(comm, comp)].visited, tallies[(comm, comp)].attempted = visited, attempted
    await _need_tallies(
        uow, tallies, [n.c.community, n.c.compound], _place_filter(viewer, Need, community, compound), since, until, day
    )
    return tallies


async def _need_tallies(
    uow: UnitOfWork,
    tallies: dict[Any, Tally],
    keys: list[Any],
    where: list[Any],
    since: datetime,
    until: datetime,
    day: date,
    join: Any = None,
) -> None:
    n = table_of(Need)
    source = join if join is not None else n
    for *key, open_, overdue in (
        await uow.session.execute(
            sa.select(
                *keys,
                sa.func.sum(sa.case((n.c.status.in_(OPEN), 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(n.c.status.in_(WORKING), n.c.due_on < day), 1), else_=0)),
            )
            .select_from(source)
            .where(*where)
            .group_by(*keys)
        )
    ).all():
        t = tallies[tuple(key) if len(key) > 1 else key[0]]
        t.needs_open, t.needs_overdue = int(open_ or 0), int(overdue or 0)
    for *key, created, closed in (
        await uow.session.execute(
            sa.select(*keys, n.c.created_at, n.c.closed_at)
            .select_from(source)
            .where(*where, n.c.status.in_(CLOSED), n.c.closed_at >= since, n.c.closed_at < until)
        )
    ).all():
        t = tallies[tuple(key) if len(key) > 1 else key[0]]
        t.needs_closed += 1
        t.durations.append(_days(as_utc(created), as_utc(closed)))


async def by_worker(
    uow: UnitOfWork, viewer: Viewer, since: datetime, until: datetime, *, community: str | None = None
) -> tuple[dict[UUID, Tally], dict[UUID, GridWorker]]:
    day = today()
    h, v, a = (table_of(Household), table_of(Visit), table_of(GridAssignment))
    n = table_of(Need)
    wq = select(GridWorker).where(col(GridWorker.active).is_(True))
    if not viewer.is_admin:
        mine = viewer.principal.scoped_values("community") if viewer.is_staff else set()
        wq = wq.where(
            sa.or_(
                col(GridWorker.community).in_(sorted(mine)),
                col(GridWorker.id) == (viewer.worker.id if viewer.worker else None),
            )
        )
    if community:
        wq = wq.where(GridWorker.community == community)
    workers = {w.id: w for w in (await uow.session.execute(wq)).scalars()}
    tallies: dict[UUID, Tally] = defaultdict(Tally)
    if not workers:
        return tallies, workers
    patch = h.join(
        a,
        sa.and_(
            a.c.compound == h.c.compound,
            a.c.ended_at.is_(None),
            sa.or_(a.c.building_id.is_(None), a.c.building_id == h.c.building_id),
        ),
    )
    ids = list(workers)
    for wid, total, overdue in (
        await uow.session.execute(
            sa.select(
                a.c.worker_id,
                sa.func.count(sa.distinct(h.c.id)),
                sa.func.count(sa.distinct(sa.case((h.c.next_due_on < day, h.c.id)))),
            )
            .select_from(patch)
            .where(a.c.worker_id.in_(ids), h.c.active_residents > 0)
            .group_by(a.c.worker_id)
        )
    ).all():
        tallies[wid].households, tallies[wid].overdue = total, overdue
    for wid, visited, attempted in (
        await uow.session.execute(
            sa.select(
                a.c.worker_id,
                sa.func.count(sa.distinct(sa.case((v.c.outcome == Outcome.visited.value, v.c.household_id)))),
                sa.func.count(sa.distinct(v.c.household_id)),
            )
            .select_from(patch.join(v, v.c.household_id == h.c.id))
            .where(a.c.worker_id.in_(ids), h.c.active_residents > 0, v.c.visited_at >= since, v.c.visited_at < until)
            .group_by(a.c.worker_id)
        )
    ).all():
        tallies[wid].visited, tallies[wid].attempted = visited, attempted
    by_subject: dict[Any, Tally] = defaultdict(Tally)
    await _need_tallies(
        uow, by_subject, [n.c.owner], [n.c.owner.in_([w.subject for w in workers.values()])], since, until, day
    )
    for w in workers.values():
        if w.subject in by_subject:
            s = by_subject[w.subject]
            t = tallies[w.id]
            t.needs_open, t.needs_overdue, t.needs_closed, t.durations = (
                s.needs_open,
                s.needs_overdue,
                s.needs_closed,
                s.durations,
            )
    return tallies, workers


async def _names(uow: UnitOfWork) -> tuple[dict[str, str], dict[str, str]]:
    communities: dict[str, str] = dict(
        (await uow.session.execute(sa.select(col(Community.code), col(Community.name)))).all()
    )
    compounds: dict[str, str] = dict(
        (await uow.session.execute(sa.select(col(Compound.code), col(Compound.name)))).all()
    )
    return communities, compounds


async def coverage(
    uow: UnitOfWork, viewer: Viewer, *, by: str, since: date, until: date, community: str | None = None
) -> Coverage:
    start, end = start_of_local_day(since), start_of_local_day(until + timedelta(days=1))
    total = Tally()
    rows: list[CoverageRow] = []
    if by == "worker":
        tallies, workers = await by_worker(uow, viewer, start, end, community=community)
        for wid, w in sorted(workers.items(), key=lambda kv: (kv[1].community, kv[1].name)):
            t = tallies.get(wid, Tally())
            rows.append(t.row(str(wid), w.name))
            total.add(t)
    else:
        places = await by_compound(uow, viewer, start, end, community=community)
        community_names, compound_names = await _names(uow)
        if by == "community":
            rolled: dict[str, Tally] = defaultdict(Tally)
            for (comm, _), t in places.items():
                rolled[comm].add(t)
            items: Iterable[tuple[str, str, Tally]] = ((c, community_names.get(c, c), t) for c, t in rolled.items())
        else:
            items = ((comp, compound_names.get(comp, comp), t) for (_, comp), t in places.items())
        for key, name, t in sorted(items, key=lambda x: x[0]):
            rows.append(t.row(key, name))
            total.add(t)
    return Coverage(by=by, since=since, until=until, rows=rows, total=total.row("total", "合计 Total"))


async def round_progress(uow: UnitOfWork, viewer: Viewer, rnd: VisitRound) -> RoundProgress:
    start, end = start_of_local_day(rnd.starts_on), start_of_local_day(rnd.ends_on + timedelta(days=1))
    places = await by_compound(uow, viewer, start, end, community=rnd.community)
    _, compound_names = await _names(uow)
    total = Tally()
    compounds = []
    for (_, comp), t in sorted(places.items()):
        compounds.append(
            ProgressRow(
                key=comp,
                name=compound_names.get(comp, comp),
                households=t.households,
                reached=t.visited,
                attempted=t.attempted,
                share=_share(t.visited, t.households),
            )
        )
        total.add(t)
    tallies, workers = await by_worker(uow, viewer, start, end, community=rnd.community)
    worker_rows = [
        ProgressRow(
            key=str(wid),
            name=w.name,
            households=tallies[wid].households,
            reached=tallies[wid].visited,
            attempted=tallies[wid].attempted,
            share=_share(tallies[wid].visited, tallies[wid].households),
        )
        for wid, w in sorted(workers.items(), key=lambda kv: kv[1].name)
    ]
    return RoundProgress(
        round=RoundPublic.model_validate(rnd, from_attributes=True),
        households=total.households,
        reached=total.visited,
        attempted=total.attempted,
        share=_share(total.visited, total.households),
        by_compound=compounds,
        by_worker=worker_rows,
    )
