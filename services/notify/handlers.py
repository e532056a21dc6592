"""What the notify service does when events arrive: identity's account events, and the links visits, canteen and
points make between accounts and their records (who is behind a resident, a diner's relative, a rider) keep
the recipient read model (``recipients``); every event a rule names is fanned out into messages and deliveries
(``messages.fan_out``). Each runs inside the consumer's unit of work with the inbox row, so a redelivered event
writes nothing twice."""

from __future__ import annotations

from minsheng.contracts import REGISTRY
from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.canteen import FamilyMemberLinked
from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountLinked,
    AccountStatusChanged,
)
from minsheng.contracts.issues import IssueFollowed, IssueMerged
from minsheng.contracts.points import RiderAccountLinked
from minsheng.contracts.visits import ResidentAccountLinked
from minsheng.platform.consumer import Handler, hand_to
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.notify import messages, recipients
from services.notify.rules import rulebook


async def on_resident_linked(event: ResidentAccountLinked, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await recipients.record_linked(uow, "visits.resident", str(event.resident_id), event.account_id)


async def on_family_linked(event: FamilyMemberLinked, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await recipients.record_linked(uow, "canteen.family", str(event.member_id), event.account_id)


async def on_rider_linked(event: RiderAccountLinked, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await recipients.record_linked(uow, "points.rider", str(event.rider_id), event.account_id)


async def on_issue_followed(event: IssueFollowed, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await recipients.issue_followed(uow, str(event.issue_id), event.subject, event.role)


async def on_ruled_event(event: IntegrationEvent, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await messages.fan_out(uow, event, envelope)  # its rows are written, and the sender woken, at the commit


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    AccountCreated: hand_to(recipients.account_created),
    AccountAccessChanged: hand_to(recipients.access_changed),
    AccountStatusChanged: hand_to(recipients.status_changed),
    AccountContactChanged: hand_to(recipients.contact_changed),
    AccountLinked: hand_to(recipients.account_linked),
    ResidentAccountLinked: on_resident_linked,
    FamilyMemberLinked: on_family_linked,
    RiderAccountLinked: on_rider_linked,
    IssueFollowed: on_issue_followed,
    IssueMerged: hand_to(recipients.issue_merged),
    **{REGISTRY[event_type]: on_ruled_event for event_type in sorted(rulebook().event_types)},
}
