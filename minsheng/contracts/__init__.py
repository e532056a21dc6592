"""The published event contracts: the only thing services share. Importing this package registers them all."""

from minsheng.contracts import canteen, identity, issues, points, visits
from minsheng.contracts.base import REGISTRY, IntegrationEvent, Origin, contract

__all__ = ["REGISTRY", "IntegrationEvent", "Origin", "canteen", "contract", "identity", "issues", "points", "visits"]
