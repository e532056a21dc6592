"""Positions as the phones send them: a GCJ-02 report (WeChat's map) is compared with WGS-84 ones after
conversion, and reads can answer in the client's system."""

from __future__ import annotations

from minsheng.platform.coords import distance_m, from_wgs84
from tests.issues.helpers import FLOOD, report, resident
from tests.support.client import System

HERE = (40.0100, 112.6990)  # WGS-84, the first report


def _north(lat: float, lng: float, metres: float) -> tuple[float, float]:
    return lat + metres / 111_195.0, lng


async def test_a_gcj02_report_50_m_away_joins_the_wgs84_one_and_would_not_without_conversion(issues: System) -> None:
    first = await report(issues, resident(issues, "res-a"), {**FLOOD, "latitude": HERE[0], "longitude": HERE[1]})
    near_wgs = _north(*HERE, 50)
    near_gcj = from_wgs84(*near_wgs, "gcj02")
    assert distance_m(*near_gcj, *HERE) > 200  # taken as WGS-84, the pair would be far apart …

    raw = await issues.client.post(
        "/issues/issues",
        headers=resident(issues, "res-b"),
        json={**FLOOD, "latitude": near_gcj[0], "longitude": near_gcj[1]},
    )
    assert raw.status_code == 201, raw.text  # … and not a duplicate

    joined = await issues.client.post(
        "/issues/issues",
        headers=resident(issues, "res-c"),
        json={**FLOOD, "latitude": near_gcj[0], "longitude": near_gcj[1], "coord_system": "gcj02"},
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["attached"] is True and joined.json()["id"] == first["id"]


async def test_positions_are_stored_in_wgs84_and_read_back_in_the_asked_system(issues: System) -> None:
    wgs = _north(*HERE, 10)
    bd = from_wgs84(*wgs, "bd09")
    created = await issues.client.post(
        "/issues/issues",
        headers=resident(issues, "res-a"),
        json={**FLOOD, "latitude": bd[0], "longitude": bd[1], "coord_system": "bd09"},
    )
    assert created.status_code == 201, created.text
    issue_id = created.json()["id"]
    who = resident(issues, "res-a")

    stored = (await issues.client.get(f"/issues/issues/{issue_id}", headers=who)).json()
    assert distance_m(stored["latitude"], stored["longitude"], *wgs) < 1
    assert "coord_system" not in stored

    gcj_params = {"coord_system": "gcj02"}
    as_gcj = (await issues.client.get(f"/issues/issues/{issue_id}", headers=who, params=gcj_params)).json()
    assert distance_m(as_gcj["latitude"], as_gcj["longitude"], *from_wgs84(*wgs, "gcj02")) < 1

    listed = (
        await issues.client.get("/issues/issues", headers=who, params={"mine": True, "coord_system": "bd09"})
    ).json()["items"]
    assert distance_m(listed[0]["latitude"], listed[0]["longitude"], *bd) < 1

    # A search around a GCJ-02 point finds it; the same numbers taken as WGS-84 do not.
    gcj = from_wgs84(*wgs, "gcj02")
    search = {"lat": gcj[0], "lng": gcj[1], "radius_m": 100}
    found = await issues.client.get("/issues/issues", headers=who, params={**search, "coord_system": "gcj02"})
    assert [i["id"] for i in found.json()["items"]] == [issue_id]
    missed = await issues.client.get("/issues/issues", headers=who, params=search)
    assert missed.json()["items"] == []


async def test_an_unknown_coordinate_system_is_a_validation_error(issues: System) -> None:
    r = await issues.client.post(
        "/issues/issues",
        headers=resident(issues, "res-a"),
        json={**FLOOD, "latitude": HERE[0], "longitude": HERE[1], "coord_system": "mars"},
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert any(e["field"] == "coord_system" for e in r.json()["errors"])
