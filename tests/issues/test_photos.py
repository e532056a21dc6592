"""Photo uploads as wx.uploadFile sends them, on the issues service (local object store): cleaned, owned,
served by short-lived signed URLs, and the photos kept in the database before are moved out."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from PIL import Image

from minsheng.platform.storage import LocalStore, object_store
from services.issues.models import Photo
from services.issues.photos import move_photos_out_of_the_database
from tests.issues.helpers import FLOOD, report, resident
from tests.support.client import System
from tests.support.photos import phone_jpeg, png, png_bomb


async def upload(s: System, who: dict[str, str], data: bytes, name: str = "wx-tmp.jpg", status: int = 201) -> dict:
    r = await s.client.post("/issues/photos", headers=who, files={"file": (name, data, "image/jpeg")})
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


async def fetch(s: System, path: str) -> tuple[str, bytes]:
    """Follow the stable path's redirect to the signed URL; (signed URL, bytes)."""
    r = await s.client.get(path)
    assert r.status_code == 302 and r.headers["cache-control"] == "private, no-store", r.text
    signed = r.headers["location"]
    got = await s.client.get(signed)
    assert got.status_code == 200, got.text
    return signed, got.content


async def test_a_phone_photo_comes_back_upright_without_any_exif(issues: System) -> None:
    me = resident(issues)
    photo = await upload(issues, me, phone_jpeg(4000, 3000, orientation=6))
    assert photo["content_type"] == "image/jpeg" and (photo["width"], photo["height"]) == (1440, 1920)
    _, data = await fetch(issues, photo["url"])
    image = Image.open(io.BytesIO(data))
    assert image.size == (1440, 1920) and len(image.getexif()) == 0 and b"iPhone" not in data
    assert "icc_profile" not in image.info and "exif" not in image.info
    _, thumb = await fetch(issues, photo["thumb_url"])
    assert max(Image.open(io.BytesIO(thumb)).size) == 320
    # Nothing of the photo is in the database: only who uploaded what, and where it is kept.
    async with issues.runtime("issues").uow(read_only=True) as uow:
        row = await uow.session.get(Photo, UUID(photo["id"]))
        assert row is not None and row.data is None and row.storage_key == f"issues/photos/{row.id}.jpg"


async def test_limits_and_types_are_checked_from_the_bytes(issues: System) -> None:
    me = resident(issues)
    big = b"\xff\xd8\xff" + bytes(20 * 1024 * 1024)
    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("big.jpg", big, "image/jpeg")})
    assert (r.status_code, r.json()["code"]) == (413, "photo_too_large")
    # Refused on the declared length alone, before a byte of the body is read.
    r = await issues.client.post(
        "/issues/photos",
        headers={**me, "content-type": "multipart/form-data; boundary=x", "content-length": str(20 * 1024 * 1024)},
        content=b"",
    )
    assert (r.status_code, r.json()["code"]) == (413, "photo_too_large")
    renamed = await upload(issues, me, png(), name="photo.jpg")  # a PNG the phone called .jpg: read as PNG
    assert renamed["content_type"] == "image/jpeg"
    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("x.jpg", bytes(range(256)) * 8)})
    assert (r.status_code, r.json()["code"]) == (415, "photo_type_not_allowed")
    r = await issues.client.post("/issues/photos", headers=me, files={"file": ("bomb.png", png_bomb())})
    assert (r.status_code, r.json()["code"]) == (413, "photo_too_many_pixels")
    r = await issues.client.post("/issues/photos", headers=me, files={"other": ("x.jpg", png())})
    assert (r.status_code, r.json()["code"]) == (422, "upload_file_missing")
    r = await issues.client.post("/issues/photos", headers=me, json={"file": "https://example.com/x.jpg"})
    assert (r.status_code, r.json()["code"]) == (415, "upload_not_multipart")


async def test_a_retried_upload_is_the_same_photo(issues: System) -> None:
    me, other = resident(issues), resident(issues, "res-other")
    data = phone_jpeg()
    first, again = await upload(issues, me, data), await upload(issues, me, data)
    assert again["id"] == first["id"]
    assert (await upload(issues, other, data))["id"] != first["id"]  # another resident's photo is their own


async def test_only_my_own_uploads_can_be_attached(issues: System) -> None:
    me, other = resident(issues), resident(issues, "res-other")
    photo = await upload(issues, me, phone_jpeg())
    r = await issues.client.post("/issues/issues", headers=other, json={**FLOOD, "photo_ids": [photo["id"]]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_photo")
    r = await issues.client.post("/issues/issues", headers=me, json={**FLOOD, "photo_urls": ["https://x.cn/a.jpg"]})
    assert (r.status_code, r.json()["code"]) == (422, "photo_urls_not_accepted")
    issue = await report(issues, me, {**FLOOD, "photo_ids": [photo["id"]]})
    assert issue["photo_urls"] == [photo["url"]]


async def test_signed_urls_work_then_expire_and_cannot_be_forged(issues: System) -> None:
    photo = await upload(issues, resident(issues), phone_jpeg())
    signed, _ = await fetch(issues, photo["url"])
    parts = urlsplit(signed)
    key = parts.path.removeprefix("/issues/objects/")
    query = parse_qs(parts.query)
    assert int(query["expires"][0]) - time.time() <= issues.settings.storage_signed_url_seconds
    store = object_store(issues.runtime("issues"))
    assert isinstance(store, LocalStore)
    past = int(time.time()) - 1
    expired = await issues.client.get(parts.path, params={"expires": past, "signature": store.signature(key, past)})
    assert (expired.status_code, expired.json()["code"]) == (403, "url_signature_invalid")
    later = int(time.time()) + 3600
    forged = await issues.client.get(parts.path, params={"expires": later, "signature": query["signature"][0]})
    assert forged.status_code == 403
    other_key = key.replace(".jpg", ".thumb.jpg")
    r = await issues.client.get(f"/issues/objects/{other_key}", params={k: v[0] for k, v in query.items()})
    assert r.status_code == 403
    r = await issues.client.get("/issues/objects/issues/../issues.db", params={k: v[0] for k, v in query.items()})
    assert r.status_code == 404


async def test_photos_kept_in_the_database_move_out_cleaned(issues: System) -> None:
    runtime = issues.runtime("issues")
    old = phone_jpeg()
    async with runtime.uow() as uow:
        row = Photo(owner="res-jiaona", content_type="image/jpeg", size=len(old), sha256="0" * 64, data=old)
        broken = Photo(owner="res-jiaona", content_type="image/jpeg", size=3, sha256="1" * 64, data=b"\xff\xd8\xff")
        asked = Photo(owner="res-jiaona", content_type="image/jpeg", size=len(old), sha256="2" * 64, data=old)
        uow.session.add_all([row, broken, asked])
        await uow.commit()
    # Asked for before the job reaches it: moved there and then, and shown cleaned.
    _, data = await fetch(issues, f"/issues/photos/{asked.id}/thumb")
    assert max(Image.open(io.BytesIO(data)).size) == 320 and len(Image.open(io.BytesIO(data)).getexif()) == 0
    assert await move_photos_out_of_the_database(runtime) == 1
    assert await move_photos_out_of_the_database(runtime) == 0  # idempotent
    async with runtime.uow(read_only=True) as uow:
        moved = await uow.session.get(Photo, row.id)
        dropped = await uow.session.get(Photo, broken.id)
    assert moved is not None and moved.data is None and moved.storage_key and moved.width == 400
    assert dropped is not None and dropped.data is None and dropped.storage_key is None
    _, data = await fetch(issues, f"/issues/photos/{row.id}")  # the URL stored in old issues still works
    assert len(Image.open(io.BytesIO(data)).getexif()) == 0 and hashlib.sha256(data).hexdigest() != row.sha256
    assert (await issues.client.get(f"/issues/photos/{broken.id}")).status_code == 404


async def test_a_streamed_upload_is_refused_once_past_the_limit(issues: System) -> None:
    """No Content-Length (chunked, as a proxy may forward it): the body is read only until it passes 10 MB."""
    sent: list[int] = []
    boundary = "wx-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode()
        for _ in range(64):  # 64 MB if it were all read
            sent.append(1)
            yield b"\xff" * (1024 * 1024)

    r = await issues.client.post(
        "/issues/photos",
        headers={**resident(issues), "content-type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert (r.status_code, r.json()["code"]) == (413, "photo_too_large")
    assert len(sent) <= 12
