"""The happiness bill (幸福账单) and the coverage figures.

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
from html import escape
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.visits import ledger
from services.visits.access import Viewer
from services.visits.config import local_date, start_of_local_day, today
from services.visits.models import (
    Bill,
    BillLine,
    BillVisit,
    Community,
    Compound,
    Coverage,
    CoverageRow,
    GridAssignment,
    GridWorker,
    Household,
    Need,
    NeedNotePublic,
    NeedStatus,
    Outcome,
    ProgressRow,
    Resident,
    ResidentStatus,
    RoundProgress,
    RoundPublic,
    Visit,
    VisitRound,
)

CLOSED = (NeedStatus.confirmed.value, NeedStatus.closed.value)
OPEN = (NeedStatus.open.value, NeedStatus.in_progress.value, NeedStatus.resolved.value, NeedStatus.escalated.value)
WORKING = (NeedStatus.open.value, NeedStatus.in_progress.value)

STATUS_ZH = {
    "open": "待办 open",
    "in_progress": "办理中 in progress",
    "resolved": "已办结待确认 resolved",
    "confirmed": "已确认销号 confirmed",
    "closed": "已销号 closed",
    "escalated": "已上报 escalated",
}
OUTCOME_ZH = {"visited": "已走访 visited", "not_home": "无人在家 not home", "refused": "拒访 refused"}


# --- the happiness bill -------------------------------------------------------------------------------------


def _done_by(notes: list[NeedNotePublic]) -> str | None:
    for n in reversed(notes):
        if n.action == "resolved" or n.action.startswith("closed_by_issue"):
            return n.actor_name or ("街道/部门 (issues)" if (n.actor or "").startswith("issues") else n.actor)
    return None


async def bill(
    uow: UnitOfWork,
    household: Household,
    *,
    resident: Resident | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Bill:
    community = (
        await uow.session.execute(select(Community).where(Community.code == household.community))
    ).scalar_one_or_none()
    compound = (
        await uow.session.execute(select(Compound).where(Compound.code == household.compound))
    ).scalar_one_or_none()
    if resident is not None:
        members = [resident.name]
    else:
        members = list(
            (
                await uow.session.execute(
                    select(Resident.name)
                    .where(Resident.household_id == household.id, Resident.status == ResidentStatus.active)
                    .order_by(col(Resident.id))
                )
            ).scalars()
        )
    names = dict(
        (
            await uow.session.execute(select(Resident.id, Resident.name).where(Resident.household_id == household.id))
        ).all()
    )

    nq = select(Need).where(Need.household_id == household.id)
    vq = select(Visit).where(Visit.household_id == household.id)
    if resident is not None:
        nq = nq.where(Need.resident_id == resident.id)
    if since:
        nq = nq.where(col(Need.created_at) >= start_of_local_day(since))
        vq = vq.where(col(Visit.visited_at) >= start_of_local_day(since))
    if until:
        nq = nq.where(col(Need.created_at) < start_of_local_day(until + timedelta(days=1)))
        vq = vq.where(col(Visit.visited_at) < start_of_local_day(until + timedelta(days=1)))
    needs = list((await uow.session.execute(nq.order_by(col(Need.created_at), col(Need.id)))).scalars())
    visits = list((await uow.session.execute(vq.order_by(col(Visit.visited_at)))).scalars())
    notes = await ledger.history(uow, [n.id for n in needs])

    lines = []
    for n in needs:
        history = [NeedNotePublic.model_validate(x, from_attributes=True) for x in notes[n.id]]
        lines.append(
            BillLine(
                need_id=n.id,
                raised_on=local_date(n.created_at),
                raised_by=n.raised_by_name or n.raised_by,
                for_resident=names.get(n.resident_id) if n.resident_id else None,
                category=n.category,
                title=n.title,
                status=n.status,  # type: ignore[arg-type]
                done=n.resolution,
                done_on=local_date(n.resolved_at) if n.resolved_at else None,
                done_by=_done_by(history),
                confirmed_on=local_date(n.closed_at) if n.closed_at and n.status == NeedStatus.confirmed else None,
                via_issue=n.issue_id,
                history=history,
            )
        )
    done = sum(
        1
        for n in needs
        if n.status in (NeedStatus.resolved, NeedStatus.confirmed) or (n.status == NeedStatus.closed and n.resolution)
    )
    return Bill(
        household_id=household.id,
        resident_id=resident.id if resident else None,
        address=household.address,
        community=household.community,
        community_name=community.name if community else None,
        compound_name=compound.name if compound else None,
        members=members,
        since=since,
        until=until,
        raised=len(needs),
        done=done,
        in_progress=sum(1 for n in needs if n.status in OPEN and n.status != NeedStatus.resolved),
        visits_count=sum(1 for v in visits if v.outcome == Outcome.visited),
        lines=lines,
        visits=[
            BillVisit(
                visited_on=local_date(v.visited_at),
                outcome=v.outcome,  # type: ignore[arg-type]
                by=v.recorded_by_name or v.recorded_by,
                visitors=v.visitors,
                satisfaction=v.satisfaction,
            )
            for v in visits
        ],
        generated_at=utcnow(),
    )


def bill_html(b: Bill) -> str:
    """A printable page (A4, no scripts, no external assets)."""
    e = escape
    period = (
        f"{b.since.isoformat() if b.since else '…'} — {b.until.isoformat() if b.until else '…'}"
        if b.since or b.until
        else "全部 all time"
    )
    rows = (
        "".join(
            f"<tr><td>{ln.raised_on.isoformat()}</td><td>{e(ln.title)}<br><small>{e(ln.category)}"
            f"{' · ' + e(ln.for_resident) if ln.for_resident else ''} · {e(ln.raised_by or '')}</small></td>"
            f"<td>{e(ln.done or '')}</td><td>{ln.done_on.isoformat() if ln.done_on else ''}</td>"
            f"<td>{e(ln.done_by or '')}</td><td>{e(STATUS_ZH.get(ln.status, ln.status))}</td></tr>"
            for ln in b.lines
        )
        or '<tr><td colspan="6">本期无诉求 Nothing raised in this period</td></tr>'
    )
    visits = "".join(
        f"<li>{v.visited_on.isoformat()} — {e(OUTCOME_ZH.get(v.outcome, v.outcome))}, {e(v.by or '')}"
        f"{'、' + e('、'.join(v.visitors)) if v.visitors else ''}"
        f"{f' · 满意度 {v.satisfaction}/5' if v.satisfaction else ''}</li>"
        for v in b.visits
    )
    place = " · ".join(e(p) for p in (b.community_name, b.compound_name) if p)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>幸福账单 {e(b.address)}</title>
<style>
 body {{ font-family: "Noto Sans CJK SC", "PingFang SC", sans-serif; margin: 2em; color: #222; }}
 h1 {{ color: #c0392b; margin-bottom: .2em; }} table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ border: 1px solid #999; padding: .35em .5em; vertical-align: top; text-align: left; }}
 th {{ background: #fbeaea; }} small {{ color: #666; }} .summary span {{ margin-right: 2em; }}
 @page {{ size: A4; margin: 15mm; }} @media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>幸福账单 <small>Happiness bill</small></h1>
<p>{place}<br><strong>{e(b.address)}</strong> — {e("、".join(b.members))}</p>
<p>期间 Period: {e(period)}</p>
<p class="summary"><span>提出诉求 Raised: <b>{b.raised}</b></span><span>已办 Done: <b>{b.done}</b></span>
<span>办理中 In progress: <b>{b.in_progress}</b></span><span>入户走访 Visits: <b>{b.visits_count}</b></span></p>
<table><thead><tr><th>提出日期 Raised</th><th>诉求 Need</th><th>办理结果 What was done</th><th>办结日期 Done on</th>
<th>经办人 By</th><th>状态 Status</th></tr></thead><tbody>{rows}</tbody></table>
<h2>走访记录 Visits</h2><ul>{visits or "<li>—</li>"}</ul>
<p><small>生成时间 Generated {b.generated_at:%Y-%m-%d %H:%M} UTC · 民生 Minsheng</small></p>
</body></html>"""


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
