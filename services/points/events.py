"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.points import HazardReported, PointsExpiring, PointsPosted, TaskClaimed, TaskCompleted
from services.points.handlers import HANDLERS

PUBLISHES = (HazardReported, TaskClaimed, TaskCompleted, PointsPosted, PointsExpiring)
CONSUMES = tuple(HANDLERS)
