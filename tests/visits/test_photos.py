"""Grid workers attach the photos they took at the door to the visit record: their own uploads only."""

from __future__ import annotations

from tests.support.client import System
from tests.support.photos import phone_jpeg
from tests.visits.helpers import build_place


async def test_a_visit_carries_the_workers_own_photos(system: System) -> None:
    p = await build_place(system)
    r = await system.client.post("/visits/photos", headers=p.worker, files={"file": ("door.jpg", phone_jpeg())})
    assert r.status_code == 201, r.text
    photo = r.json()
    staff_photo = await p.post("/photos", p.staff, None, 201, files={"file": ("x.jpg", phone_jpeg(gps=False))})
    body = {"household_id": p.household_id, "outcome": "visited", "photo_ids": [staff_photo["id"]]}
    r = await system.client.post("/visits/visits", headers=p.worker, json=body)
    assert (r.status_code, r.json()["code"]) == (422, "unknown_photo")
    visit = await p.post("/visits", p.worker, {**body, "photo_ids": [photo["id"]]}, 201)
    assert visit["photo_urls"] == [f"/visits/photos/{photo['id']}"]
    listed = await p.get("/visits", p.staff, params={"household_id": p.household_id})
    assert listed["items"][0]["photo_urls"] == visit["photo_urls"]
    assert (await system.client.get(visit["photo_urls"][0])).status_code == 302
    resident = system.auth("resident", sub="res-1")
    r = await system.client.post("/visits/photos", headers=resident, files={"file": ("a.jpg", phone_jpeg())})
    assert r.status_code == 403
