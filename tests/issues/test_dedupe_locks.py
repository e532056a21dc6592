"""The dedupe locks: any two reports that could be duplicates share a lock; reports far apart do not."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from minsheng.platform.coords import distance_m
from services.issues.duplicates import dedupe_lock_keys

RADIUS = 100.0


def _moved(lat: float, lng: float, metres: float, bearing: float) -> tuple[float, float]:
    dlat = metres * math.cos(bearing) / 111_320.0
    dlng = metres * math.sin(bearing) / (111_320.0 * math.cos(math.radians(lat)))
    return lat + dlat, lng + dlng


@settings(max_examples=2000, deadline=None)
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-179, 179),
    metres=st.floats(0, RADIUS * 0.999),
    bearing=st.floats(0, 2 * math.pi),
)
def test_two_reports_within_the_radius_always_share_a_lock(
    lat: float, lng: float, metres: float, bearing: float
) -> None:
    other = _moved(lat, lng, metres, bearing)
    if distance_m(lat, lng, *other) > RADIUS:  # the flat-earth step above may overshoot near the poles
        return
    mine, theirs = dedupe_lock_keys("fire", lat, lng, RADIUS), dedupe_lock_keys("fire", *other, RADIUS)
    assert set(mine) & set(theirs)
    assert 1 <= len(mine) <= 4 and mine == sorted(mine)


def test_reports_far_apart_or_of_other_categories_take_other_locks() -> None:
    here = dedupe_lock_keys("fire", 40.0134, 112.7032, RADIUS)
    assert not set(here) & set(dedupe_lock_keys("fire", 40.0234, 112.7032, RADIUS))  # 1.1 km north
    assert not set(here) & set(dedupe_lock_keys("gas_leak", 40.0134, 112.7032, RADIUS))
