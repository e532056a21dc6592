"""The fire flow in one process over PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import pytest

from tests.support.client import System
from tests.support.infra import becomes, eventually
from tests.unit.test_fire_flow import FIRE, register_rider

pytestmark = pytest.mark.integration


async def test_fire_flow_over_kafka(kafka_system: System) -> None:
    s = kafka_system
    rider = await register_rider(s)
    staff = s.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    report = (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).json()

    async def issue_visible() -> dict | None:
        items = (await s.client.get("/issues/issues", headers=staff)).json()["items"]
        return items[0] if items else None

    issue = await eventually(issue_visible, within=30)
    assert issue["urgent"] and issue["origin_id"] == report["id"]
    r = await s.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff)
    assert r.status_code == 200, r.text

    async def balance() -> int:
        return (await s.client.get("/points/riders/me/balance", headers=rider)).json()["balance"]  # type: ignore[no-any-return]

    await becomes(balance, 20, within=30)
