"""What the canteen service does when other services' events arrive (inside the consumer's unit of work)."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.consumer import Handler

HANDLERS: dict[type[IntegrationEvent], Handler] = {}
