"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from services.visits.handlers import HANDLERS

PUBLISHES: tuple[type, ...] = ()
CONSUMES = tuple(HANDLERS)
