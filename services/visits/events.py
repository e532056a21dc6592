"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.visits import NeedEscalated, NeedProgressed, ResidentStatusChanged, WelfareCheckCompleted
from services.visits.handlers import HANDLERS

PUBLISHES = (NeedEscalated, NeedProgressed, ResidentStatusChanged, WelfareCheckCompleted)
CONSUMES = tuple(HANDLERS)
