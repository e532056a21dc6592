"""What the issues service does when other services' events arrive (inside the consumer's unit of work)."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.points import HazardReported
from minsheng.platform.consumer import Handler
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.uow import UnitOfWork
from services.issues import service


async def on_hazard_reported(event: HazardReported, envelope: CloudEvent, uow: UnitOfWork) -> None:
    await service.intake_hazard_report(uow, event)


HANDLERS: dict[type[IntegrationEvent], Handler] = {HazardReported: on_hazard_reported}
