"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.visits import NeedEscalated, ResidentStatusChanged, WelfareCheckCompleted
from services.visits.handlers import HANDLERS

PUBLISHES = (NeedEscalated, ResidentStatusChanged, WelfareCheckCompleted)
CONSUMES = tuple(HANDLERS)
