"""What the points service does when other services' events arrive. Each runs inside the consumer's unit
of work, together with the inbox row, so a redelivered event changes nothing."""

from __future__ import annotations

import contextlib
from uuid import UUID

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.canteen import DeliveryCancelled, DeliveryRequested
from minsheng.contracts.issues import (
    IssueAccepted,
    IssueAssigned,
    IssueClosedUnresolved,
    IssueConfirmed,
    IssueCreated,
    IssueFact,
    IssueLinked,
    IssueRejected,
    IssueReopened,
    IssueResolved,
    IssueVerified,
)
from minsheng.platform.consumer import Handler, hand_to
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.points import hazards, tasks
from services.points.models import HazardReport, HazardStatus


def _report_ids(event: IssueFact) -> list[UUID]:
    """The riders' reports this issue stands for: its origin and any duplicates attached to it."""
    ids: dict[UUID, None] = {}
    for origin in [event.origin, *event.linked]:
        if origin is not None and origin.service == "points" and origin.kind == "hazard_report":
            with contextlib.suppress(ValueError):
                ids[UUID(origin.id)] = None
    return list(ids)


async def _reports_behind(event: IssueFact, uow: UnitOfWork) -> list[HazardReport]:
    reports = []
    for report_id in _report_ids(event):
        report = await hazards.report_for_issue(uow, report_id)
        if report is not None:
            reports.append(report)
    return reports


async def on_issue_opened(event: IssueCreated | IssueLinked, envelope: CloudEvent, uow: UnitOfWork) -> None:
    """An issue was opened for a report, or a report was attached to an open issue as a duplicate: the rider
    sees which issue now carries their report."""
    note = "An issue was opened" if isinstance(event, IssueCreated) else "Attached to an open issue"
    await hazards.link_to_issue(uow, _report_ids(event), event.issue_id, note)


async def on_issue_verified(event: IssueVerified, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _awarded_reports(event, envelope, uow):
        hazards.move_report(
            report, HazardStatus.verified if report.status != HazardStatus.resolved else None, "verified", event.note
        )


async def on_issue_resolved(event: IssueResolved, envelope: CloudEvent, uow: UnitOfWork) -> None:
    # Resolving a problem proves it was real: award if staff skipped the explicit verification.
    for report in await _awarded_reports(event, envelope, uow):
        hazards.move_report(report, HazardStatus.resolved, "resolved", event.note)


async def _awarded_reports(event: IssueFact, envelope: CloudEvent, uow: UnitOfWork) -> list[HazardReport]:
    """The reports behind an issue proven real, except rejected ones, each awarded its points (once: the
    report is the ledger entry's cause)."""
    reports = [r for r in await _reports_behind(event, uow) if r.status != HazardStatus.rejected]
    for report in reports:
        report.issue_id = report.issue_id or event.issue_id
        await hazards.award_for_verified_report(uow, report, str(envelope.id))
    return reports


async def on_issue_rejected(event: IssueRejected, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _reports_behind(event, uow):
        if event.false_report:
            await hazards.reverse_award(uow, report, str(envelope.id), f"Report rejected: {event.reason}")
            await hazards.count_false_report(uow, report)
        hazards.move_report(report, HazardStatus.rejected, "rejected", event.reason)


def _progress(issue_status: str) -> Handler:
    """Events that only move the issue along: the rider sees the step on their report."""

    async def handler(event: IssueFact, envelope: CloudEvent, uow: UnitOfWork) -> None:
        for report in await _reports_behind(event, uow):
            report.issue_id = report.issue_id or event.issue_id
            note = getattr(event, "reason", None) or getattr(event, "note", None)
            status = None
            if issue_status == "reopened" and report.status == HazardStatus.resolved:
                status = HazardStatus.verified if report.points_awarded else HazardStatus.accepted
            hazards.move_report(report, status, issue_status, note)

    return handler


async def on_delivery_cancelled(event: DeliveryCancelled, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await tasks.withdraw_by_origin(uow, "canteen", "order", str(event.order_id), f"Cancelled: {event.reason}")


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    IssueCreated: on_issue_opened,
    IssueLinked: on_issue_opened,
    IssueAccepted: _progress("accepted"),
    IssueAssigned: _progress("assigned"),
    IssueVerified: on_issue_verified,
    IssueResolved: on_issue_resolved,
    IssueConfirmed: _progress("confirmed"),
    IssueReopened: _progress("reopened"),
    IssueClosedUnresolved: _progress("closed_unresolved"),
    IssueRejected: on_issue_rejected,
    DeliveryRequested: hand_to(tasks.post_delivery),
    DeliveryCancelled: on_delivery_cancelled,
}
