"""The canteen's cross-service flows in the distributed configuration: PostgreSQL per service + a real
Kafka-protocol broker (same scenarios as ``test_flows.py``)."""

from __future__ import annotations

import pytest

from tests.canteen.test_flows import absence_flow, death_flow, delivery_flow
from tests.support.client import System

pytestmark = pytest.mark.integration


async def test_delivery_flow_over_kafka(kafka_system: System) -> None:
    await delivery_flow(kafka_system)


async def test_absence_flow_over_kafka(kafka_system: System) -> None:
    await absence_flow(kafka_system)


async def test_death_flow_over_kafka(kafka_system: System) -> None:
    await death_flow(kafka_system)
