"""What the points service does when other services' events arrive. Each runs inside the consumer's unit
of work, together with the inbox row, so a redelivered event changes nothing."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.issues import IssueCreated, IssueFact, IssueRejected, IssueResolved, IssueVerified
from minsheng.platform.consumer import Handler
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.points import service
from services.points.models import HazardReport, HazardStatus


async def _reports_behind(event: IssueFact, uow: UnitOfWork) -> list[HazardReport]:
    """The riders' reports this issue stands for: its origin and any duplicates attached to it."""
    reports = []
    for origin in [event.origin, *event.linked]:
        if origin is not None and origin.service == "points" and origin.kind == "hazard_report":
            report = await service.report_for_issue(uow, origin.id)
            if report is not None:
                reports.append(report)
    return reports


async def on_issue_created(event: IssueCreated, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _reports_behind(event, uow):
        report.issue_id = event.issue_id
        if report.status == HazardStatus.submitted:
            service.move_report(report, HazardStatus.accepted, "submitted")


async def on_issue_verified(event: IssueVerified, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _reports_behind(event, uow):
        if report.status == HazardStatus.rejected:
            continue
        await service.award_for_verified_report(uow, report, str(envelope.id))
        if report.status != HazardStatus.resolved:
            service.move_report(report, HazardStatus.verified, "verified")


async def on_issue_resolved(event: IssueResolved, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _reports_behind(event, uow):
        if report.status == HazardStatus.rejected:
            continue
        # Resolving a problem proves it was real: award if staff skipped the explicit verification.
        await service.award_for_verified_report(uow, report, str(envelope.id))
        service.move_report(report, HazardStatus.resolved, "resolved")


async def on_issue_rejected(event: IssueRejected, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for report in await _reports_behind(event, uow):
        if event.false_report:
            await service.reverse_award(uow, report, str(envelope.id), f"Report rejected: {event.reason}")
        service.move_report(report, HazardStatus.rejected, "rejected")


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    IssueCreated: on_issue_created,
    IssueVerified: on_issue_verified,
    IssueResolved: on_issue_resolved,
    IssueRejected: on_issue_rejected,
}
