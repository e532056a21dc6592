"""Riders attach photos to hazard reports and task proofs by upload id: their own uploads only; the photo
reaches the issues service with the report, and its EXIF never leaves the phone's upload."""

from __future__ import annotations

import io

from PIL import Image

from tests.points.helpers import FIRE, rider, upload_photo
from tests.support.client import System
from tests.support.photos import phone_jpeg


async def test_a_hazard_report_carries_my_own_photos_only(points: System) -> None:
    fan, other = await rider(points), await rider(points, sub="rider-li", name="李娜", phone="13812349999")
    photo = await upload_photo(points, fan.headers, phone_jpeg(orientation=6))
    r = await points.client.post("/points/hazard-reports", headers=other.headers, json={**FIRE, "photo_ids": [photo]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_photo")
    r = await points.client.post(
        "/points/hazard-reports", headers=fan.headers, json={**FIRE, "photo_urls": ["https://cdn.example/p/1.jpg"]}
    )
    assert (r.status_code, r.json()["code"]) == (422, "photo_urls_not_accepted")
    r = await points.client.post("/points/hazard-reports", headers=fan.headers, json={**FIRE, "photo_ids": [photo]})
    assert r.status_code == 201, r.text
    [path] = r.json()["photo_urls"]
    assert path == f"/points/photos/{photo}"
    got = await points.client.get(path, follow_redirects=True)
    image = Image.open(io.BytesIO(got.content))
    assert got.status_code == 200 and image.size == (300, 400) and len(image.getexif()) == 0


async def test_only_riders_and_staff_upload_point_photos(points: System) -> None:
    resident = points.auth("resident", sub="res-1")
    r = await points.client.post("/points/photos", headers=resident, files={"file": ("a.jpg", phone_jpeg())})
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_role")
