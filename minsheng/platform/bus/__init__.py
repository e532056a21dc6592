"""The event bus: one interface, an in-process and a Kafka transport. Same outbox, relay, inbox on both."""

from minsheng.platform.bus.base import Delivery, EventBus, MessageHandler, OutgoingMessage

__all__ = ["Delivery", "EventBus", "MessageHandler", "OutgoingMessage"]
