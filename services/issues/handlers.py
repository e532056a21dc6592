"""What the issues service does when other services' events arrive (inside the consumer's unit of work)."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.points import HazardReported
from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.consumer import Handler, hand_to
from services.issues import referrals

HANDLERS: dict[type[IntegrationEvent], Handler] = {
    # A rider's hazard report → an issue (urgent for fire, gas, water), or a duplicate attached to one.
    HazardReported: hand_to(referrals.intake_hazard_report),
    # A need a grid worker could not solve on the spot → an issue (channel grid_worker).
    NeedEscalated: hand_to(referrals.intake_need),
}
