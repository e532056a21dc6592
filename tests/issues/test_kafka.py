"""The need-escalation flow of the issues service over PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import pytest

from minsheng.platform.ids import uuid7
from tests.issues.helpers import escalate, events_of, staff
from tests.support.client import System
from tests.support.infra import eventually

pytestmark = pytest.mark.integration


async def test_escalated_need_over_kafka(kafka_system: System) -> None:
    s = kafka_system
    need = uuid7()
    await escalate(s, need, settle=False, title="需要拐杖", description="腿伤", urgency="urgent")
    desk = staff(s)

    async def issue() -> dict | None:
        items = (await s.client.get("/issues/issues", headers=desk)).json()["items"]
        return items[0] if items else None

    found = await eventually(issue, within=30)
    assert found["origin_id"] == str(need) and found["channel"] == "grid_worker" and found["urgent"] is True
    r = await s.client.post(f"/issues/issues/{found['id']}/resolve", headers=desk, json={"note": "送去拐杖"})
    assert r.status_code == 200, r.text
    [resolved] = await events_of(s, "resolved", found["id"])
    assert resolved["origin"] == {"service": "visits", "kind": "need", "id": str(need)}
