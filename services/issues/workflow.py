"""The staff workflow (accept, verify, assign, start, resolve, reject, redirect, close), comments and
following, the reporter's confirmation and reopening, merging and splitting issues. Use cases take a unit of
work and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import Origin
from minsheng.contracts.issues import (
    DepartmentName,
    IssueAccepted,
    IssueAssigned,
    IssueClosedUnresolved,
    IssueConfirmed,
    IssueCreated,
    IssueFollowed,
    IssueLinked,
    IssueMerged,
    IssueRejected,
    IssueReopened,
    IssueResolved,
    IssueVerified,
)
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Message, Problem, conflict, invalid, not_found, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.issues import config
from services.issues.access import is_participant, is_reporter, manages, not_allowed, role_of, works_on
from services.issues.catalogue import (
    category_or_default,
    render_template,
)
from services.issues.config import IssuesSettings
from services.issues.intake import deadlines
from services.issues.models import (
    OPEN_STATUSES,
    Assignment,
    CloseUnresolved,
    Confirmation,
    Department,
    Issue,
    IssueAssignment,
    IssueReporter,
    IssueStatus,
    MergeRequest,
    NotHandledMatter,
    Redirect,
    Rejection,
    Reopening,
    Resolution,
    SplitRequest,
    StaffNote,
    TimelineEntry,
)
from services.issues.photos import photo_urls_of
from services.issues.queries import get_issue
from services.issues.timeline import close, fact, origin_of, record, responded, touch

# --- staff workflow -----------------------------------------------------------------------------------------


def _invalid_transition(detail: Message, issue: Issue, allowed_from: Iterable[str]) -> Problem:
    # ``current`` is the member's name before ``current_status`` was common to every service; apps read it.
    return wrong_status(
        "invalid_transition", detail, current_status=issue.status, allowed_from=allowed_from, current=issue.status
    )


def _transition(issue: Issue, allowed_from: Iterable[IssueStatus], to: IssueStatus) -> datetime:
    allowed = {s.value for s in allowed_from}
    if issue.status not in allowed:
        raise _invalid_transition(
            _t("An issue that is {status} cannot become {to}.", status=issue.status, to=to), issue, allowed
        )
    issue.status = to
    return touch(issue)


async def _note(uow: UnitOfWork, issue: Issue, body: StaffNote | None) -> str | None:
    if body is None:
        return None
    if body.template:
        text = await render_template(uow, body.template, issue)
        return f"{text}\n{body.note}" if body.note else text
    return body.note


def _accepted(uow: UnitOfWork, who: Principal, issue: Issue, now: datetime, note: str | None = None) -> None:
    issue.status = IssueStatus.accepted
    responded(issue, now)
    record(uow, issue, "accepted", who, note)
    uow.emit(IssueAccepted(**fact(issue, who.sub)))


async def accept(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    ensure(manages(who, issue), not_allowed("Only staff of the issue's community accept it."))
    if issue.status != IssueStatus.submitted:
        raise _invalid_transition(
            _t("An issue that is {status} cannot become accepted.", status=issue.status),
            issue,
            [IssueStatus.submitted.value],
        )
    now = touch(issue)
    note = await _note(uow, issue, body)
    _accepted(uow, who, issue, now, note)
    if note:
        issue.status_note = note
    return issue


async def verify(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    ensure(works_on(who, issue), not_allowed("Only staff handling the issue verify it."))
    if issue.status not in OPEN_STATUSES:
        raise _invalid_transition(
            _t("An issue that is {status} cannot be verified.", status=issue.status), issue, OPEN_STATUSES
        )
    if issue.verified_at is not None:
        raise conflict("already_verified", "This issue was already verified on site.")
    now = touch(issue)
    note = await _note(uow, issue, body)
    if issue.status == IssueStatus.submitted:
        _accepted(uow, who, issue, now)
    responded(issue, now)
    issue.verified_at = now
    record(uow, issue, "verified", who, note)
    uow.emit(IssueVerified(note=note, **fact(issue, who.sub)))
    return issue


async def assign(uow: UnitOfWork, who: Principal, issue: Issue, body: Assignment) -> Issue:
    ensure(manages(who, issue), not_allowed("Only staff of the issue's community dispatch it."))
    codes = list(dict.fromkeys(body.departments))
    rows = await uow.session.execute(
        select(Department.code, Department.name_zh, Department.name_en).where(
            col(Department.code).in_(codes), col(Department.active).is_(True)
        )
    )
    names = {code: DepartmentName(code=code, name_zh=zh, name_en=en) for code, zh, en in rows}
    unknown = set(codes) - set(names)
    if unknown:
        raise invalid(
            "unknown_department",
            "Unknown department",
            _t("No active department {departments}.", departments=sorted(unknown)),
            field="departments",
            message="unknown",
        )
    was_submitted = issue.status == IssueStatus.submitted
    now = _transition(
        issue,
        {
            IssueStatus.submitted,
            IssueStatus.accepted,
            IssueStatus.assigned,
            IssueStatus.in_progress,
            IssueStatus.reopened,
        },
        IssueStatus.assigned,
    )
    note = await _note(uow, issue, body)
    if was_submitted:
        _accepted(uow, who, issue, now)
        issue.status = IssueStatus.assigned
    existing = {
        a.department: a
        for a in (
            await uow.session.execute(select(IssueAssignment).where(IssueAssignment.issue_id == issue.id))
        ).scalars()
    }
    for code, a in existing.items():
        a.active = code in codes
        a.lead = code == codes[0]
    for code in codes:
        if code not in existing:
            uow.session.add(IssueAssignment(issue_id=issue.id, department=code, lead=code == codes[0], assigned_at=now))
    issue.departments = codes
    issue.officer = body.officer
    responded(issue, now)
    record(uow, issue, "assigned", who, note, data={"departments": codes, "officer": body.officer})
    uow.emit(
        IssueAssigned(
            departments=codes,
            department_names=[names[c] for c in codes],
            officer=body.officer,
            **fact(issue, who.sub),
        )
    )
    return issue


async def start(uow: UnitOfWork, who: Principal, issue: Issue, body: StaffNote | None) -> Issue:
    ensure(works_on(who, issue), not_allowed("Only the assigned department or community staff start work."))
    now = _transition(
        issue, {IssueStatus.accepted, IssueStatus.assigned, IssueStatus.reopened}, IssueStatus.in_progress
    )
    responded(issue, now)
    note = await _note(uow, issue, body)
    if note:
        issue.status_note = note
    record(uow, issue, "in_progress", who, note)
    return issue


async def resolve(uow: UnitOfWork, who: Principal, issue: Issue, body: Resolution | StaffNote | None) -> Issue:
    ensure(works_on(who, issue), not_allowed("Only staff handling the issue resolve it."))
    now = _transition(issue, OPEN_STATUSES, IssueStatus.resolved)
    note = await _note(uow, issue, body)
    photos = await photo_urls_of(uow, who, body.photo_ids) if isinstance(body, Resolution) else []
    responded(issue, now)
    issue.resolved_at = now
    issue.closed_at = now
    issue.status_note = note or issue.status_note
    record(uow, issue, "resolved", who, note, data={"photo_urls": photos} if photos else None)
    uow.emit(IssueResolved(note=note, **fact(issue, who.sub)))
    return issue


async def reject(uow: UnitOfWork, who: Principal, issue: Issue, body: Rejection) -> Issue:
    ensure(manages(who, issue) or works_on(who, issue), not_allowed("Only staff handling the issue reject it."))
    now = _transition(issue, OPEN_STATUSES, IssueStatus.rejected)
    reason = await _note(uow, issue, StaffNote(note=body.reason, template=body.template)) or ""
    responded(issue, now)
    close(issue, IssueStatus.rejected, now)
    issue.status_note = reason
    record(uow, issue, "rejected", who, reason, data={"false_report": body.false_report})
    uow.emit(IssueRejected(reason=reason, false_report=body.false_report, **fact(issue, who.sub)))
    return issue


async def redirect(uow: UnitOfWork, who: Principal, issue: Issue, body: Redirect) -> Issue:
    """Not ours: tell the resident where to go instead (a helpful answer, not a dead ticket)."""
    ensure(manages(who, issue), not_allowed("Only staff of the issue's community redirect it."))
    go_to = body.go_to
    if body.matter:
        matter = await uow.session.get(NotHandledMatter, body.matter)
        if matter is None:
            raise not_found("not_handled_matter", body.matter)
        go_to = go_to or f"{matter.go_to_zh} / {matter.go_to_en}"
    now = _transition(
        issue, {IssueStatus.submitted, IssueStatus.accepted, IssueStatus.reopened}, IssueStatus.redirected
    )
    note = await _note(uow, issue, body)
    responded(issue, now)
    close(issue, IssueStatus.redirected, now)
    issue.redirect_to = go_to
    reason = f"Not handled here: {go_to}" + (f" ({note})" if note else "")
    issue.status_note = reason
    record(uow, issue, "redirected", who, reason, data={"go_to": go_to, "matter": body.matter})
    uow.emit(IssueRejected(reason=reason, false_report=False, redirect_to=go_to, **fact(issue, who.sub)))
    return issue


async def close_unresolved(uow: UnitOfWork, who: Principal, issue: Issue, body: CloseUnresolved) -> Issue:
    ensure(works_on(who, issue), not_allowed("Only staff handling the issue close it."))
    now = _transition(issue, OPEN_STATUSES, IssueStatus.closed_unresolved)
    reason = await _note(uow, issue, StaffNote(note=body.reason, template=body.template)) or body.reason
    responded(issue, now)
    close(issue, IssueStatus.closed_unresolved, now)
    issue.status_note = reason
    record(uow, issue, "closed_unresolved", who, reason)
    uow.emit(IssueClosedUnresolved(reason=reason, **fact(issue, who.sub)))
    return issue


async def comment(uow: UnitOfWork, who: Principal, issue: Issue, body: str, internal: bool) -> TimelineEntry:
    staff = works_on(who, issue)
    ensure(
        staff or not internal,
        Problem(403, "internal_staff_only", "Internal notes are for staff", "Leave out `internal`."),
    )
    ensure(
        staff or await is_participant(uow, who, issue),
        Problem(
            403,
            "not_a_participant",
            "Follow the issue to comment",
            "Only reporters, followers and staff comment; POST …/follow first.",
        ),
    )
    now = touch(issue)
    if staff and not internal:
        responded(issue, now)
    entry = TimelineEntry(
        issue_id=issue.id,
        action="comment",
        actor=who.sub,
        actor_role=role_of(who),
        note=body,
        internal=internal,
        at=now,
    )
    uow.session.add(entry)
    return entry


async def follow(uow: UnitOfWork, who: Principal, issue: Issue) -> bool:
    if await is_participant(uow, who, issue):
        return False
    uow.session.add(IssueReporter(issue_id=issue.id, subject=who.sub, role="follower", channel=None))
    record(uow, issue, "followed", who)
    uow.emit(IssueFollowed(issue_id=issue.id, subject=who.sub, role="follower", occurred_at=utcnow()))
    return True


# --- the reporter's side ------------------------------------------------------------------------------------


async def confirm(uow: UnitOfWork, who: Principal, issue: Issue, body: Confirmation) -> Issue:
    not_theirs = Problem(403, "not_the_reporter", "Only a reporter confirms", "You did not report this issue.")
    ensure(await is_reporter(uow, who, issue), not_theirs)
    now = _transition(issue, {IssueStatus.resolved}, IssueStatus.confirmed)
    issue.confirmed_at = now
    issue.rating = body.rating
    record(uow, issue, "confirmed", who, body.comment, data={"rating": body.rating})
    uow.emit(IssueConfirmed(rating=body.rating, auto=False, **fact(issue, who.sub)))
    return issue


async def reopen(
    uow: UnitOfWork, who: Principal, issue: Issue, body: Reopening, cfg: IssuesSettings | None = None
) -> Issue:
    cfg = cfg or config.get()
    staff = manages(who, issue)
    if not staff:
        not_theirs = Problem(403, "not_the_reporter", "Only a reporter reopens", "You did not report this issue.")
        ensure(await is_reporter(uow, who, issue), not_theirs)
        if issue.resolved_at and utcnow() - issue.resolved_at > timedelta(days=cfg.reopen_window_days):
            raise conflict(
                "reopen_window_passed",
                _t(
                    "Issues can be reopened within {reopen_window_days:g} days of their resolution; "
                    "please report it again.",
                    reopen_window_days=cfg.reopen_window_days,
                ),
            )
    now = _transition(issue, {IssueStatus.resolved, IssueStatus.confirmed}, IssueStatus.reopened)
    cat = await category_or_default(uow, issue.category, urgent=issue.urgent)
    issue.resolution_due_at = now + timedelta(hours=cat.resolution_hours)
    issue.resolution_overdue_at = None
    issue.escalation_level = 0
    issue.closed_at = issue.confirmed_at = issue.rating = None  # type: ignore[assignment]
    issue.reopen_count += 1
    issue.status_note = body.reason
    record(uow, issue, "reopened", who, body.reason)
    uow.emit(IssueReopened(reason=body.reason, **fact(issue, who.sub)))
    return issue


# --- merge and split ----------------------------------------------------------------------------------------


async def merge(uow: UnitOfWork, who: Principal, source: Issue, body: MergeRequest) -> Issue:
    """Merge ``source`` (a duplicate) into ``body.into``: its reporters and origins follow the target."""
    if body.into == source.id:
        raise conflict("merge_into_itself", "An issue cannot be merged into itself.")
    target = await get_issue(uow, who, body.into, for_update=True)
    ensure(
        manages(who, source) and manages(who, target), not_allowed("Only staff of both issues' communities merge them.")
    )
    if target.status not in OPEN_STATUSES:
        raise wrong_status(
            "target_not_open",
            _t("The issue to merge into is {status}; reopen it first.", status=target.status),
            current_status=target.status,
            allowed_from=OPEN_STATUSES,
        )
    now = _transition(source, OPEN_STATUSES, IssueStatus.merged)
    close(source, IssueStatus.merged, now)
    source.merged_into = target.id
    moved = [o for o in [origin_of(source)] if o is not None] + [Origin(**o) for o in source.linked]
    await uow.session.execute(
        sa.update(IssueReporter).where(col(IssueReporter.issue_id) == source.id).values(issue_id=target.id)
    )
    await uow.session.execute(
        sa.update(IssueAssignment).where(col(IssueAssignment.issue_id) == source.id).values(active=False)
    )
    target.reporter_count += source.reporter_count
    target.linked = [*target.linked, *(o.model_dump() for o in moved)]
    target.urgent = target.urgent or source.urgent
    target.photo_urls = [*target.photo_urls, *source.photo_urls][:30]
    touch(target, now)
    record(uow, source, "merged", who, body.note, data={"into": str(target.id)})
    record(uow, target, "merged_in", who, body.note, data={"from": str(source.id)})
    uow.emit(IssueMerged(into_issue_id=target.id, **fact(source, who.sub)))
    if moved:
        uow.emit(IssueLinked(attached=moved, reason="merge", **fact(target, who.sub)))
    return target


async def split(uow: UnitOfWork, who: Principal, issue: Issue, body: SplitRequest) -> Issue:
    """A report attached by mistake becomes an issue of its own."""
    ensure(manages(who, issue), not_allowed("Only staff of the issue's community split it."))
    if issue.status == IssueStatus.merged:
        raise _invalid_transition(
            "A merged issue cannot be split; split its target.", issue, set(IssueStatus) - {IssueStatus.merged}
        )
    query = select(IssueReporter).where(IssueReporter.issue_id == issue.id, IssueReporter.role == "reporter")
    query = (
        query.where(IssueReporter.subject == body.subject)
        if body.subject
        else query.where(IssueReporter.origin_id == body.origin_id)
    )
    rows = list((await uow.session.execute(query)).scalars())
    primary = [r for r in rows if (r.subject == issue.reporter and r.origin_id == issue.origin_id)]
    rows = [r for r in rows if r not in primary]
    if not rows:
        raise Problem(
            404,
            "reporter_not_found",
            "No such attached report",
            "Name a reporter attached as a duplicate (the first reporter stays with the issue).",
        )
    row = rows[0]
    cat = await category_or_default(uow, body.category or issue.category, urgent=issue.urgent)
    now = utcnow()
    origin = (
        Origin(service=row.origin_service, kind=row.origin_kind, id=row.origin_id)
        if row.origin_service and row.origin_kind and row.origin_id
        else None
    )
    first_due, resolution_due = deadlines(cat, issue.urgent, now, config.get())
    new = Issue(
        title=body.title or issue.title,
        description=issue.description,
        category=cat.code,
        latitude=issue.latitude,
        longitude=issue.longitude,
        address=issue.address,
        community=issue.community,
        compound=issue.compound,
        channel=row.channel or issue.channel,
        urgent=issue.urgent,
        is_public=issue.is_public,
        reporter=row.subject,
        origin_service=origin.service if origin else None,
        origin_kind=origin.kind if origin else None,
        origin_id=origin.id if origin else None,
        created_at=now,
        updated_at=now,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
    )
    uow.session.add(new)
    await uow.session.flush()
    row.issue_id = new.id
    issue.reporter_count = max(1, issue.reporter_count - 1)
    if origin is not None:
        issue.linked = [o for o in issue.linked if o != origin.model_dump()]
    touch(issue, now)
    record(uow, issue, "split", who, body.note, data={"into": str(new.id), "subject": row.subject})
    record(uow, new, "submitted", who, body.note, data={"split_from": str(issue.id)}, at=now)
    uow.emit(IssueCreated(title=new.title, **fact(new, who.sub)))
    return new
