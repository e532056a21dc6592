"""The happiness bill (幸福账单): what the grid workers did for a household, as data and as a printable page."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from sqlmodel import col, select

from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.visits import ledger
from services.visits.config import local_date, start_of_local_day
from services.visits.coverage import OPEN
from services.visits.models import (
    Bill,
    BillLine,
    BillVisit,
    Community,
    Compound,
    Household,
    Need,
    NeedNotePublic,
    NeedStatus,
    Outcome,
    Resident,
    ResidentStatus,
    Visit,
)

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
