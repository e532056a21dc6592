"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.points import HazardReported, PointsPosted, TaskCompleted
from services.points.handlers import HANDLERS

PUBLISHES = (HazardReported, TaskCompleted, PointsPosted)
CONSUMES = tuple(HANDLERS)
