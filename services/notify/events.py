"""The events this service consumes (it publishes none: it only tells people)."""

from services.notify.handlers import HANDLERS

PUBLISHES: tuple[type, ...] = ()
CONSUMES = tuple(HANDLERS)
