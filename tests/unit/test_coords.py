"""The coordinate conversions against published reference points, and their round trips."""

from __future__ import annotations

import math
import random

import pytest

from minsheng.platform.coords import (
    CoordSystem,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    to_wgs84,
    wgs84_to_gcj02,
)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lat1, lng1), (lat2, lng2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


# eviltransform go/transform_test.go (WGS lat,lng → GCJ lat,lng)
EVILTRANSFORM = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
]


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM)
def test_wgs84_to_gcj02_matches_eviltransform(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    assert wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-9)


def test_the_wandergis_readme_points() -> None:  # its README gives (lng, lat)
    assert wgs84_to_gcj02(39.915, 116.404) == pytest.approx((39.91640428150164, 116.41024449916938), abs=1e-9)
    assert gcj02_to_bd09(39.915, 116.404) == pytest.approx((39.92133699351021, 116.41036949371029), abs=1e-9)
    assert bd09_to_gcj02(39.915, 116.404) == pytest.approx((39.90865673957631, 116.39762729119315), abs=1e-9)


@pytest.mark.parametrize("system", [CoordSystem.gcj02, CoordSystem.bd09])
def test_round_trips_stay_within_a_metre_across_mainland_china(system: CoordSystem) -> None:
    rng = random.Random(20261206)
    for _ in range(2000):
        wgs = (rng.uniform(18.0, 53.0), rng.uniform(74.0, 134.0))
        there = from_wgs84(*wgs, system)
        assert metres(there, wgs) > 1.0  # the systems really differ inside China …
        assert metres(to_wgs84(*there, system), wgs) < 1.0  # … and the conversion undoes itself


def test_outside_china_gcj02_is_wgs84() -> None:
    paris = (48.8566, 2.3522)
    assert wgs84_to_gcj02(*paris) == paris
    assert to_wgs84(*paris, "gcj02") == paris


def test_wgs84_is_left_alone_and_unknown_systems_are_refused() -> None:
    assert to_wgs84(30.0, 120.0) == (30.0, 120.0)
    with pytest.raises(ValueError):
        to_wgs84(30.0, 120.0, "mercator")


def test_a_converted_position_at_the_edges_stays_a_valid_position() -> None:
    from pydantic import Field as PydanticField

    from minsheng.platform.coords import Positioned

    class Report(Positioned):
        latitude: float | None = PydanticField(default=None, ge=-90, le=90)
        longitude: float | None = PydanticField(default=None, ge=-180, le=180)

    for lat, lng in ((-90.0, -180.0), (90.0, 180.0), (-90.0, 180.0)):
        for system in ("bd09", "gcj02"):
            r = Report.model_validate({"latitude": lat, "longitude": lng, "coord_system": system})
            assert r.latitude is not None and -90 <= r.latitude <= 90
            assert r.longitude is not None and -180 <= r.longitude <= 180
            Report.model_validate(r.model_dump())  # what is stored validates again
