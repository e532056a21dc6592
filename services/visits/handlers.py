"""What the visits service does when other services' events arrive. Each runs inside the consumer's unit of
work, together with the inbox row, so a redelivered event changes nothing.

Issue events name the needs they stand for in ``origin`` and ``linked`` (duplicates attached to the issue):
each is treated alike.
"""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.canteen import AbsenceAlert
from minsheng.contracts.identity import AccountContactChanged
from minsheng.contracts.issues import (
    IssueAssigned,
    IssueClosedUnresolved,
    IssueConfirmed,
    IssueCreated,
    IssueLinked,
    IssueMerged,
    IssueRejected,
    IssueReopened,
    IssueResolved,
)
from minsheng.platform.consumer import Handler, hand_to
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.visits import ledger, linking, visiting


async def on_issue_created(event: IssueCreated, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event):
        ledger.link_issue(uow, need, event)


async def on_issue_linked(event: IssueLinked, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event, event.attached):
        ledger.link_issue(uow, need, event)


async def on_issue_merged(event: IssueMerged, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event):
        ledger.link_issue(uow, need, event, merged_into=event.into_issue_id)


async def on_issue_assigned(event: IssueAssigned, envelope: CloudEvent, uow: UnitOfWork) -> None:
    who = ", ".join(event.departments) + (f" ({event.officer})" if event.officer else "")
    for need in await ledger.needs_behind(uow, event):
        ledger.issue_note(uow, need, event, "issue_assigned", f"Assigned to {who}")


async def on_issue_resolved(event: IssueResolved, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event):
        ledger.close_by_issue(uow, need, event, how="resolved", text=event.note)


async def on_issue_confirmed(event: IssueConfirmed, envelope: CloudEvent, uow: UnitOfWork) -> None:
    text = f"Confirmed by the reporter{f', rating {event.rating}/5' if event.rating else ''}" + (
        " (automatically)" if event.auto else ""
    )
    for need in await ledger.needs_behind(uow, event):
        ledger.close_by_issue(uow, need, event, how="confirmed", text=text)


async def on_issue_rejected(event: IssueRejected, envelope: CloudEvent, uow: UnitOfWork) -> None:
    reason = event.reason + (f" — belongs to: {event.redirect_to}" if event.redirect_to else "")
    for need in await ledger.needs_behind(uow, event):
        ledger.return_to_owner(uow, need, event, how="rejected", reason=reason)


async def on_issue_closed_unresolved(event: IssueClosedUnresolved, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event):
        ledger.return_to_owner(uow, need, event, how="closed_unresolved", reason=event.reason)


async def on_issue_reopened(event: IssueReopened, envelope: CloudEvent, uow: UnitOfWork) -> None:
    for need in await ledger.needs_behind(uow, event):
        ledger.back_to_issue(uow, need, event, event.reason)


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    IssueCreated: on_issue_created,
    IssueLinked: on_issue_linked,
    IssueMerged: on_issue_merged,
    IssueAssigned: on_issue_assigned,
    IssueResolved: on_issue_resolved,
    IssueConfirmed: on_issue_confirmed,
    IssueRejected: on_issue_rejected,
    IssueClosedUnresolved: on_issue_closed_unresolved,
    IssueReopened: on_issue_reopened,
    AbsenceAlert: hand_to(visiting.welfare_check_for),
    AccountContactChanged: hand_to(linking.account_contact_changed),
}
