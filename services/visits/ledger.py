"""The needs ledger (问题台账): every need a visit brings up gets an owner and a due date and is closed out
one by one (逐一销号). Statuses::

    open → in_progress → resolved → confirmed (by the resident, or automatically after a quiet week)
      ↘ escalated (to the issues service) → closed by itself when the issue is resolved/confirmed
    any open state → closed by a supervisor with a reason

A need whose issue is rejected or closed unresolved goes back to its owner (status ``open``) with the reason.
Every change writes a ledger note: the history is what the happiness bill prints.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import get_args
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import IssueFact
from minsheng.contracts.visits import NeedAction, NeedEscalated, NeedProgressed
from minsheng.platform.access import ensure, visible_or_404
from minsheng.platform.errors import Problem, conflict, invalid, wrong_status
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.visits import cadence, config
from services.visits.access import Viewer, lives_in, reaches_need, supervises, worker_by_subject, works_on_need
from services.visits.config import now, today
from services.visits.models import (
    OPEN_NEED,
    TERMINAL_NEED,
    Building,
    Compound,
    Household,
    Need,
    NeedConfirm,
    NeedCreate,
    NeedDetail,
    NeedFilters,
    NeedNote,
    NeedNotePublic,
    NeedPublic,
    NeedResolve,
    NeedStatus,
    NeedUpdate,
    Resident,
)

ORIGIN_KIND = "need"


def need_public(n: Need) -> NeedPublic:
    public = NeedPublic.model_validate(n, from_attributes=True)
    public.overdue = n.status in (NeedStatus.open, NeedStatus.in_progress) and cadence.is_overdue(n.due_on, today())
    return public


ANNOUNCED = frozenset(get_args(NeedAction))


def note(
    uow: UnitOfWork, need: Need, action: str, actor: str | None, actor_name: str | None = None, text: str | None = None
) -> None:
    """Every change writes a history note; the ones a resident hears about (recorded, progress, closure) are
    also published as ``NeedProgressed`` in the same transaction."""
    uow.session.add(
        NeedNote(need_id=need.id, action=action, actor=actor, actor_name=actor_name, note=text[:2000] if text else None)
    )
    if action in ANNOUNCED:
        uow.emit(
            NeedProgressed(
                need_id=need.id,
                household_id=need.household_id,
                resident_id=need.resident_id,
                action=action,  # type: ignore[arg-type]  # checked against the Literal's values above
                status=str(need.status),
                category=need.category,
                title=need.title,
                community=need.community,
                compound=need.compound,
                due_on=need.due_on,
                occurred_at=utcnow(),
            )
        )


def _refuse_past_due(due_on: date) -> None:
    if due_on < today():
        raise invalid(
            "due_on_in_past",
            "The due date has passed",
            "Give a due date from today on.",
            field="due_on",
            message="in the past",
        )


async def _owner_name(uow: UnitOfWork, subject: str, fallback: str | None) -> str | None:
    worker = await worker_by_subject(uow, subject)
    return worker.name if worker is not None else fallback


async def raise_need(
    uow: UnitOfWork, viewer: Viewer, household: Household, data: NeedCreate, visit_id: UUID | None = None
) -> Need:
    """Write a need into the ledger (the caller checked the household may be written by this viewer)."""
    if data.resident_id is not None:
        resident = await uow.session.get(Resident, data.resident_id)
        if resident is None or resident.household_id != household.id:
            raise invalid(
                "resident_not_in_household",
                "The resident is not in this household",
                _t(
                    "Resident {resident_id} does not live in household {id}.",
                    resident_id=data.resident_id,
                    id=household.id,
                ),
                field="resident_id",
                message="not in this household",
            )
    if data.due_on is not None:
        _refuse_past_due(data.due_on)
    owner = data.owner or viewer.sub
    if owner == viewer.sub and viewer.worker is not None:
        owner_name: str | None = viewer.worker.name
    else:
        owner_name = await _owner_name(uow, owner, viewer.name if owner == viewer.sub else None)
    need = Need(
        household_id=household.id,
        resident_id=data.resident_id,
        visit_id=visit_id,
        community=household.community,
        compound=household.compound,
        building_id=household.building_id,
        category=data.category,
        title=data.title,
        description=data.description,
        urgency=data.urgency,
        owner=owner,
        owner_name=owner_name,
        due_on=data.due_on or cadence.need_due_on(data.urgency, today()),
        raised_by=viewer.sub,
        raised_by_name=viewer.name,
    )
    uow.session.add(need)
    note(uow, need, "raised", viewer.sub, viewer.name, "During a visit" if visit_id else None)
    return need


async def get_need(uow: UnitOfWork, viewer: Viewer, need_id: UUID, *, for_update: bool = False) -> Need:
    need = await uow.session.get(Need, need_id, with_for_update=for_update and uow.db.is_postgres)
    return visible_or_404(need, lambda n: reaches_need(viewer, n), "need", need_id)


async def history(uow: UnitOfWork, need_ids: list[UUID]) -> dict[UUID, list[NeedNote]]:
    out: dict[UUID, list[NeedNote]] = {i: [] for i in need_ids}
    if not need_ids:
        return out
    rows = await uow.session.execute(
        select(NeedNote).where(col(NeedNote.need_id).in_(need_ids)).order_by(col(NeedNote.at), col(NeedNote.id))
    )
    for n in rows.scalars():
        out[n.need_id].append(n)
    return out


async def detail(uow: UnitOfWork, need: Need) -> NeedDetail:
    notes = (await history(uow, [need.id]))[need.id]
    return NeedDetail(
        **need_public(need).model_dump(),
        history=[NeedNotePublic.model_validate(n, from_attributes=True) for n in notes],
    )


async def list_needs(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    filters: NeedFilters,
    page: PageRequest,
) -> Page[Need]:
    query = select(Need)
    if filters.mine:
        query = query.where(Need.owner == viewer.sub)
    else:
        query = query.where(sa.or_(viewer.clause(Need, household_col=Need.household_id), col(Need.owner) == viewer.sub))
    query = where_given(
        query,
        (Need.owner, filters.owner),
        (Need.community, filters.community),
        (Need.compound, filters.compound),
        (Need.household_id, filters.household_id),
        (Need.resident_id, filters.resident_id),
        (Need.category, filters.category),
    )
    if filters.status:
        query = query.where(col(Need.status).in_([s.value for s in filters.status]))
    if filters.overdue:
        query = query.where(col(Need.status).in_([NeedStatus.open, NeedStatus.in_progress]), col(Need.due_on) < today())
    return await keyset_page(uow.session, query, Keyset((Need.created_at, Need.id)), page)


# --- the owner's and the supervisor's workflow --------------------------------------------------------------


def _move(need: Need, allowed: set[NeedStatus], to: NeedStatus) -> None:
    if need.status not in allowed:
        raise wrong_status(
            "invalid_transition",
            _t("A need that is {status} cannot become {to}.", status=need.status, to=to),
            current_status=need.status,
            allowed_from=allowed,
        )
    need.status = to
    need.updated_at = utcnow()


def _not_need_owner() -> Problem:
    return Problem(403, "not_need_owner", "Not your need", "Only its owner or community staff may do this.")


def _ensure_works_on(viewer: Viewer, need: Need) -> None:
    ensure(works_on_need(viewer, need), _not_need_owner())


def _ensure_resident_or_worker(viewer: Viewer, need: Need) -> None:
    """The household's own resident confirms and reopens, as do those who work on the need."""
    ensure(lives_in(viewer, need.household_id) or works_on_need(viewer, need), _not_need_owner())


def _ensure_supervisor(viewer: Viewer, need: Need) -> None:
    only_staff = Problem(403, "supervisor_only", "Supervisors only", "Only community staff may do this.")
    ensure(supervises(viewer, need), only_staff)


async def start(uow: UnitOfWork, viewer: Viewer, need: Need, text: str | None) -> Need:
    _ensure_works_on(viewer, need)
    _move(need, {NeedStatus.open}, NeedStatus.in_progress)
    note(uow, need, "started", viewer.sub, viewer.name, text)
    return need


async def resolve(uow: UnitOfWork, viewer: Viewer, need: Need, body: NeedResolve) -> Need:
    _ensure_works_on(viewer, need)
    _move(need, {NeedStatus.open, NeedStatus.in_progress}, NeedStatus.resolved)
    need.resolution, need.resolved_at, need.resolved_by = body.resolution, need.updated_at, viewer.sub
    note(uow, need, "resolved", viewer.sub, viewer.name, body.resolution)
    return need


async def confirm(uow: UnitOfWork, viewer: Viewer, need: Need, body: NeedConfirm) -> Need:
    """The resident confirms it is done (themselves in the app, or in person to the grid worker)."""
    _ensure_resident_or_worker(viewer, need)
    _move(need, {NeedStatus.resolved}, NeedStatus.confirmed)
    need.closed_at, need.closed_by, need.rating = need.updated_at, viewer.sub, body.rating
    need.closed_via = "resident"
    rating = f"rating {body.rating}/5" if body.rating else None
    note(uow, need, "confirmed", viewer.sub, viewer.name, "; ".join(p for p in (rating, body.note) if p) or None)
    return need


async def reopen(uow: UnitOfWork, viewer: Viewer, need: Need, reason: str) -> Need:
    """The resident says it is not done after all."""
    _ensure_resident_or_worker(viewer, need)
    _move(need, {NeedStatus.resolved}, NeedStatus.in_progress)
    need.resolved_at = need.resolved_by = None
    note(uow, need, "reopened", viewer.sub, viewer.name, reason)
    return need


async def close(uow: UnitOfWork, viewer: Viewer, need: Need, reason: str) -> Need:
    _ensure_supervisor(viewer, need)
    _move(need, set(OPEN_NEED), NeedStatus.closed)
    need.closed_at, need.closed_by, need.closed_via = need.updated_at, viewer.sub, "supervisor"
    need.close_reason = reason
    note(uow, need, "closed", viewer.sub, viewer.name, reason)
    return need


async def update(uow: UnitOfWork, viewer: Viewer, need: Need, body: NeedUpdate) -> Need:
    _ensure_supervisor(viewer, need)
    if need.status in TERMINAL_NEED:
        raise wrong_status("need_closed", "A closed need cannot be changed.", current_status=need.status)
    changes = body.model_dump(exclude_unset=True)
    lines = []
    if changes.get("owner"):
        need.owner = changes["owner"]
        need.owner_name = await _owner_name(uow, need.owner, None)
        lines.append(f"owner → {need.owner_name or need.owner}")
    if changes.get("due_on"):
        _refuse_past_due(changes["due_on"])
        need.due_on = changes["due_on"]
        lines.append(f"due {need.due_on.isoformat()}")
    if changes.get("urgency"):
        need.urgency = changes["urgency"]
        lines.append(f"urgency {need.urgency}")
    if body.note:
        lines.append(body.note)
    need.updated_at = utcnow()
    note(uow, need, "updated", viewer.sub, viewer.name, "; ".join(lines) or None)
    return need


async def escalate(uow: UnitOfWork, viewer: Viewer, need: Need, text: str | None) -> Need:
    """Beyond the community: the issues service takes it (``NeedEscalated`` in the same transaction). A need
    goes up once: the issue is keyed on the need, so a second escalation would be a duplicate there."""
    _ensure_works_on(viewer, need)
    if need.escalated_at is not None:
        raise conflict(
            "already_escalated",
            "This need already went to the issues service once; resolve it here or ask a supervisor to close it.",
            issue_id=str(need.issue_id) if need.issue_id else None,
        )
    _move(need, {NeedStatus.open, NeedStatus.in_progress}, NeedStatus.escalated)
    need.escalated_at = need.updated_at
    household = await uow.session.get(Household, need.household_id)
    building = await uow.session.get(Building, need.building_id)
    compound = (await uow.session.execute(select(Compound).where(Compound.code == need.compound))).scalar_one_or_none()
    latitude = (
        building.latitude if building and building.latitude is not None else compound.latitude if compound else None
    )
    longitude = (
        building.longitude if building and building.longitude is not None else compound.longitude if compound else None
    )
    description = need.description + (f"\n\n{text}" if text else "")
    uow.emit(
        NeedEscalated(
            need_id=need.id,
            household_id=need.household_id,
            category=need.category,
            title=need.title[:200],
            description=description[:4000] or need.title,
            urgency=need.urgency,  # type: ignore[arg-type]
            community=need.community,
            compound=need.compound,
            address=household.address if household else None,
            latitude=latitude,
            longitude=longitude,
            escalated_by=viewer.sub,
            escalated_at=need.escalated_at,
        )
    )
    note(uow, need, "escalated", viewer.sub, viewer.name, text)
    return need


# --- what the issues service tells us -----------------------------------------------------------------------


def _need_ids(origins: list[Origin | None]) -> list[UUID]:
    ids = []
    for o in origins:
        if o is not None and o.service == "visits" and o.kind == ORIGIN_KIND:
            try:
                ids.append(UUID(o.id))
            except ValueError:
                continue
    return ids


async def needs_behind(uow: UnitOfWork, event: IssueFact, extra: list[Origin] | None = None) -> list[Need]:
    """The needs this issue stands for: its origin and any attached as duplicates."""
    ids = _need_ids([event.origin, *event.linked, *(extra or [])])
    if not ids:
        return []
    query = select(Need).where(col(Need.id).in_(sorted(set(ids), key=str)))
    if uow.db.is_postgres:
        query = query.with_for_update()
    return list((await uow.session.execute(query)).scalars())


def _issue_actor(event: IssueFact) -> str:
    return f"issues:{event.actor}" if event.actor else "issues"


def link_issue(uow: UnitOfWork, need: Need, event: IssueFact, *, merged_into: UUID | None = None) -> None:
    issue_id = merged_into or event.issue_id
    if need.issue_id == issue_id:
        return
    text = (
        f"Issue {event.issue_id} merged into issue {issue_id}"
        if merged_into
        else f"Issue {issue_id} opened in the issues service"
        if need.issue_id is None
        else f"Now followed by issue {issue_id}"
    )
    need.issue_id = issue_id
    need.updated_at = utcnow()
    note(uow, need, "issue_linked", _issue_actor(event), None, text)


def close_by_issue(uow: UnitOfWork, need: Need, event: IssueFact, *, how: str, text: str | None) -> None:
    link_issue(uow, need, event)
    if need.status in TERMINAL_NEED:
        note(uow, need, f"issue_{how}", _issue_actor(event), None, text)
        return
    at = event.occurred_at
    need.status = NeedStatus.closed
    need.resolution = need.resolution or text or f"Resolved through issue {event.issue_id}"
    need.resolved_at = need.resolved_at or at
    need.resolved_by = need.resolved_by or _issue_actor(event)
    need.closed_at, need.closed_by, need.closed_via = at, _issue_actor(event), "issue"
    need.close_reason = f"Issue {event.issue_id} {how}"
    need.updated_at = utcnow()
    note(uow, need, f"closed_by_issue_{how}", _issue_actor(event), None, text or need.close_reason)


def return_to_owner(uow: UnitOfWork, need: Need, event: IssueFact, *, how: str, reason: str) -> None:
    link_issue(uow, need, event)
    if need.status != NeedStatus.escalated:
        note(uow, need, f"issue_{how}", _issue_actor(event), None, reason)
        return
    need.status = NeedStatus.open
    need.returned_reason = reason
    need.updated_at = utcnow()
    note(uow, need, f"returned_issue_{how}", _issue_actor(event), None, reason)


def back_to_issue(uow: UnitOfWork, need: Need, event: IssueFact, reason: str | None) -> None:
    """The issue was reopened: a need it had closed is with the issues service again."""
    if need.status == NeedStatus.closed and need.closed_via == "issue":
        need.status = NeedStatus.escalated
        need.closed_at = need.closed_by = need.closed_via = need.close_reason = None
        need.resolved_at = need.resolved_by = need.resolution = None
        need.updated_at = utcnow()
        note(uow, need, "issue_reopened", _issue_actor(event), None, reason)


def issue_note(uow: UnitOfWork, need: Need, event: IssueFact, action: str, text: str | None) -> None:
    link_issue(uow, need, event)
    note(uow, need, action, _issue_actor(event), None, text)


# --- automatic confirmation ---------------------------------------------------------------------------------


async def auto_confirm(uow: UnitOfWork, limit: int = 500) -> int:
    """Resolved needs the resident did not answer about within ``auto_confirm_days`` are confirmed."""
    cutoff = now() - timedelta(days=config.get().auto_confirm_days)
    query = (
        select(Need)
        .where(Need.status == NeedStatus.resolved, col(Need.resolved_at) < cutoff)
        .order_by(col(Need.resolved_at))
        .limit(limit)
    )
    if uow.db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    needs = list((await uow.session.execute(query)).scalars())
    for need in needs:
        need.status = NeedStatus.confirmed
        need.closed_at, need.closed_by, need.closed_via = utcnow(), "system", "auto"
        need.updated_at = utcnow()
        note(
            uow,
            need,
            "auto_confirmed",
            "system",
            None,
            f"No answer from the resident within {config.get().auto_confirm_days} days",
        )
    return len(needs)
