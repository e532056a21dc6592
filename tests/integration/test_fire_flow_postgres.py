"""The fire flow on real PostgreSQL databases (in-process bus)."""

from __future__ import annotations

import pytest

from tests.support.client import System
from tests.unit.test_fire_flow import FIRE, register_rider

pytestmark = pytest.mark.integration


async def test_fire_flow_on_postgres(pg_system: System) -> None:
    rider = await register_rider(pg_system)
    staff = pg_system.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    report = (await pg_system.client.post("/points/hazard-reports", headers=rider, json=FIRE)).json()
    await pg_system.settle()
    issue = (await pg_system.client.get("/issues/issues", headers=staff)).json()["items"][0]
    assert issue["urgent"] and issue["origin_id"] == report["id"]
    mine = (await pg_system.client.get(f"/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "accepted" and mine["issue_id"] == issue["id"]  # the issue's event came back
    assert [p["status"] for p in mine["progress"]] == ["submitted", "submitted"]
    r = await pg_system.client.post(f"/issues/issues/{issue['id']}/verify", headers=staff)
    assert r.status_code == 200, r.text
    await pg_system.settle()
    assert (await pg_system.client.get("/points/riders/me/balance", headers=rider)).json()["balance"] == 20
    mine = (await pg_system.client.get(f"/points/hazard-reports/{report['id']}", headers=rider)).json()
    assert mine["status"] == "verified" and [p["status"] for p in mine["progress"]][-1] == "verified"
