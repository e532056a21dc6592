"""The identity service consumes no events: it is the source of who is who."""

from __future__ import annotations

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.consumer import Handler

HANDLERS: dict[type[IntegrationEvent], Handler] = {}
