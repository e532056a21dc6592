"""A rider's hazard report from WeChat's map (GCJ-02) is stored, forwarded and compared in WGS-84."""

from __future__ import annotations

from minsheng.platform.coords import distance_m, from_wgs84
from tests.support.client import System
from tests.unit.test_fire_flow import FIRE, register_rider

WGS = (40.0134, 112.7032)


async def test_a_gcj02_hazard_report_becomes_a_wgs84_issue(system: System) -> None:
    rider = await register_rider(system)
    gcj = from_wgs84(*WGS, "gcj02")
    r = await system.client.post(
        "/points/hazard-reports",
        headers=rider,
        json={**FIRE, "latitude": gcj[0], "longitude": gcj[1], "coord_system": "gcj02"},
    )
    assert r.status_code == 201, r.text
    report = r.json()
    assert distance_m(report["latitude"], report["longitude"], *WGS) < 1

    on_map = await system.client.get(
        f"/points/hazard-reports/{report['id']}", headers=rider, params={"coord_system": "gcj02"}
    )
    assert distance_m(on_map.json()["latitude"], on_map.json()["longitude"], *gcj) < 1

    await system.settle()
    staff = system.auth("staff", sub="staff-1", scopes=["community:yunxing"])
    [issue] = (await system.client.get("/issues/issues", headers=staff)).json()["items"]
    assert distance_m(issue["latitude"], issue["longitude"], *WGS) < 1
