"""What the issues service does when other services' events arrive (inside the consumer's unit of work)."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.points import HazardReported
from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.consumer import Handler
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.issues import referrals


async def on_hazard_reported(event: HazardReported, envelope: CloudEvent, uow: UnitOfWork) -> None:
    """A rider's hazard report → an issue (urgent for fire, gas, water), or a duplicate attached to one."""
    await referrals.intake_hazard_report(uow, event)


async def on_need_escalated(event: NeedEscalated, envelope: CloudEvent, uow: UnitOfWork) -> None:
    """A need a grid worker could not solve on the spot → an issue (channel grid_worker)."""
    await referrals.intake_need(uow, event)


HANDLERS: dict[type[IntegrationEvent], Handler] = {
    HazardReported: on_hazard_reported,
    NeedEscalated: on_need_escalated,
}
