"""Coordinate systems as Chinese phones and maps send them: WGS-84 (GPS), GCJ-02 (WeChat's map and
``wx.chooseLocation``, AMap, Tencent) and BD-09 (Baidu).

Every position is stored in WGS-84; an input says which system it is in (``coord_system``) and is converted
here, once, before any distance check, so that a GCJ-02 report 50 m from a WGS-84 one is 50 m away and not the
few hundred metres the two systems differ by. Reads may ask for GCJ-02 or BD-09 back.

The WGS-84 → GCJ-02 transform is the published one (a = 6378245.0, ee = 0.00669342162296594323; identity outside
mainland China, with eviltransform's box); it has no closed-form inverse, so GCJ-02 → WGS-84 is the fixed-point
iteration ``w ← w − (f(w) − gcj)``, which converges to well under a millimetre in ten steps.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Self

from fastapi import Query
from pydantic import model_validator
from sqlmodel import Field, SQLModel


class CoordSystem(StrEnum):
    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_INVERSE_STEPS = 10


def outside_china(lat: float, lng: float) -> bool:
    return lng < 72.004 or lng > 137.8347 or lat < 0.8293 or lat > 55.8271


def _delta(lat: float, lng: float) -> tuple[float, float]:
    x, y = lng - 105.0, lat - 35.0
    s = 2.0 / 3.0 * (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi))
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + s
    d_lat += 2.0 / 3.0 * (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi))
    d_lat += 2.0 / 3.0 * (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0))
    d_lng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + s
    d_lng += 2.0 / 3.0 * (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi))
    d_lng += 2.0 / 3.0 * (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi))
    phi = lat / 180.0 * math.pi
    m = 1.0 - _EE * math.sin(phi) ** 2
    sqrt_m = math.sqrt(m)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (m * sqrt_m) * math.pi)
    d_lng = (d_lng * 180.0) / (_A / sqrt_m * math.cos(phi) * math.pi)
    return d_lat, d_lng


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    if outside_china(lat, lng):
        return lat, lng
    d_lat, d_lng = _delta(lat, lng)
    return lat + d_lat, lng + d_lng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    if outside_china(lat, lng):
        return lat, lng
    w_lat, w_lng = lat, lng
    for _ in range(_INVERSE_STEPS):
        g_lat, g_lng = wgs84_to_gcj02(w_lat, w_lng)
        w_lat, w_lng = w_lat - (g_lat - lat), w_lng - (g_lng - lng)
    return w_lat, w_lng


def gcj02_to_bd09(lat: float, lng: float) -> tuple[float, float]:
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    x, y = lng - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.sin(theta), z * math.cos(theta)


def to_wgs84(lat: float, lng: float, system: CoordSystem | str = CoordSystem.wgs84) -> tuple[float, float]:
    """A position as the client sent it, in WGS-84 (how Minsheng stores every position)."""
    system = CoordSystem(system)
    if system is CoordSystem.gcj02:
        return gcj02_to_wgs84(lat, lng)
    if system is CoordSystem.bd09:
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lng))
    return lat, lng


def from_wgs84(lat: float, lng: float, system: CoordSystem | str = CoordSystem.wgs84) -> tuple[float, float]:
    """A stored (WGS-84) position in the system a client asked for."""
    system = CoordSystem(system)
    if system is CoordSystem.gcj02:
        return wgs84_to_gcj02(lat, lng)
    if system is CoordSystem.bd09:
        return gcj02_to_bd09(*wgs84_to_gcj02(lat, lng))
    return lat, lng


EARTH_RADIUS_M = 6_371_000.0


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Haversine distance in metres between two positions of the same system (WGS-84 for anything stored):
    good enough for "within 100 m", a visit's check-in and "the nearest community"."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(lat: float, lng: float, radius_m: float) -> tuple[float, float, float, float]:
    """(south, north, west, east) around a point: an index-friendly pre-filter for a radius search."""
    dlat = radius_m / 111_320.0
    dlng = radius_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
    return lat - dlat, lat + dlat, lng - dlng, lng + dlng


def reproject(item: Any, system: CoordSystem | str | None) -> Any:
    """A public answer (a pydantic model or a dict) with its ``latitude``/``longitude`` in ``system`` — for reads
    that ask ``?coord_system=gcj02`` so a client can put the point straight on its map."""
    if system is None or CoordSystem(system) is CoordSystem.wgs84:
        return item
    if isinstance(item, dict):
        lat, lng = item.get("latitude"), item.get("longitude")
        if lat is not None and lng is not None:
            item["latitude"], item["longitude"] = from_wgs84(lat, lng, system)
        return item
    lat, lng = getattr(item, "latitude", None), getattr(item, "longitude", None)
    if lat is not None and lng is not None:
        item.latitude, item.longitude = from_wgs84(lat, lng, system)
    return item


class Positioned(SQLModel):
    """An input that carries ``latitude``/``longitude``: the client says which system they are in and they are
    turned into WGS-84 during validation, so nothing after the view ever sees anything but WGS-84."""

    coord_system: CoordSystem = Field(
        default=CoordSystem.wgs84,
        exclude=True,
        description=(
            "The system `latitude`/`longitude` are in: `wgs84` (GPS), `gcj02` (WeChat's map, "
            "`wx.getLocation({type:'gcj02'})`, `wx.chooseLocation`, AMap, Tencent) or `bd09` (Baidu). "
            "Stored as WGS-84."
        ),
    )

    @model_validator(mode="after")
    def _to_wgs84(self) -> Self:
        lat, lng = getattr(self, "latitude", None), getattr(self, "longitude", None)
        if self.coord_system is not CoordSystem.wgs84 and lat is not None and lng is not None:
            wgs_lat, wgs_lng = to_wgs84(lat, lng, self.coord_system)
            # BD-09's offset applies everywhere: at the poles or the antimeridian it would leave the valid range,
            # and a stored -90.006 would fail every later answer's validation.
            setattr(self, "latitude", min(90.0, max(-90.0, wgs_lat)))  # noqa: B010 - the subclass declares it
            setattr(self, "longitude", min(180.0, max(-180.0, wgs_lng)))  # noqa: B010
            self.coord_system = CoordSystem.wgs84
        return self


CoordSystemQuery = Annotated[
    CoordSystem | None,
    Query(description="Answer positions in this system (default WGS-84); `gcj02` for WeChat's and AMap's maps"),
]
