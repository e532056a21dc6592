"""Where uploaded files live: never in a service's database. One port, two adapters.

- ``LocalStore`` (embedded mode, or a volume every replica shares): files under ``<data_dir>/objects``; a
  signed URL is ``/<service>/objects/<key>?expires=…&signature=…`` (HMAC-SHA256 over key and expiry, checked
  in constant time) served by ``objects_router`` which every service with uploads mounts.
- ``S3Store`` (distributed mode): any S3-compatible object store (SeaweedFS, MinIO, AWS S3, Aliyun OSS, COS)
  through ``aiobotocore``; a signed URL is an S3 presigned GET (SigV4), so the bytes go from the object store
  to the phone without passing through a service.

``object_store(runtime)`` gives the service's store (made once per runtime and closed with it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from minsheng.platform.errors import Problem, not_found
from minsheng.settings import Settings

log = logging.getLogger(__name__)
_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+")
_TYPES = {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str


class ObjectStore(Protocol):
    kind: str

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...
    async def get(self, key: str) -> StoredObject | None: ...
    async def delete(self, key: str) -> None: ...
    async def signed_url(self, key: str, expires_seconds: int) -> str: ...
    async def close(self) -> None: ...


def check_key(key: str) -> str:
    """Keys are ``<service>/<path…>`` of plain names: no ``..``, no absolute paths, no surprises in a URL."""
    if len(key) > 300 or not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalStore:
    kind = "local"

    def __init__(self, root: Path, signing_key: bytes) -> None:
        self.root = root.resolve()
        self._signing_key = signing_key

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file

    async def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        return StoredObject(data, _TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream"))

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self._signing_key, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def signed_url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        expires = int(time.time()) + expires_seconds
        service = key.split("/", 1)[0]
        query = urlencode({"expires": expires, "signature": self.signature(key, expires)})
        return f"/{service}/objects/{key}?{query}"

    def verify(self, key: str, expires: str, signature: str) -> bool:
        try:
            when = int(expires)
        except ValueError:
            return False
        expected = self.signature(key, when)
        # compare_digest first, whatever the expiry: the time taken says nothing about the signature.
        valid = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
        return valid and when >= time.time()

    async def close(self) -> None:
        return None


class S3Store:
    kind = "s3"

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.storage_s3_bucket
        self._settings = settings
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._signer: Any = None
        self._lock = asyncio.Lock()

    def _client_args(self, endpoint: str) -> dict[str, Any]:
        from botocore.config import Config

        s = self._settings
        return {
            "endpoint_url": endpoint or None,
            "region_name": s.storage_s3_region,
            "aws_access_key_id": s.storage_s3_access_key.get_secret_value() if s.storage_s3_access_key else None,
            "aws_secret_access_key": s.storage_s3_secret_key.get_secret_value() if s.storage_s3_secret_key else None,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": s.storage_s3_addressing_style},
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }

    async def _clients(self) -> tuple[Any, Any]:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from aiobotocore.session import get_session

                    session = get_session()
                    s = self._settings
                    self._signer = await self._stack.enter_async_context(
                        session.create_client(
                            "s3", **self._client_args(s.storage_s3_public_endpoint or s.storage_s3_endpoint)
                        )
                    )
                    self._client = await self._stack.enter_async_context(
                        session.create_client("s3", **self._client_args(s.storage_s3_endpoint))
                    )
        return self._client, self._signer

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        client, _ = await self._clients()
        await client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)

    async def get(self, key: str) -> StoredObject | None:
        client, _ = await self._clients()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=check_key(key))
        except client.exceptions.NoSuchKey:
            return None
        async with answer["Body"] as body:
            data = await body.read()
        return StoredObject(data, answer.get("ContentType", "application/octet-stream"))

    async def delete(self, key: str) -> None:
        client, _ = await self._clients()
        await client.delete_object(Bucket=self.bucket, Key=check_key(key))

    async def signed_url(self, key: str, expires_seconds: int) -> str:
        _, signer = await self._clients()
        url: str = await signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=expires_seconds
        )
        return url

    async def ensure_bucket(self) -> None:
        """Create the bucket when missing (development and tests; production buckets are provisioned)."""
        client, _ = await self._clients()
        try:
            await client.head_bucket(Bucket=self.bucket)
        except Exception:
            await client.create_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._signer = None


def make_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend_in_use == "s3":
        return S3Store(settings)
    root = settings.storage_local_dir or settings.data_dir / "objects"
    return LocalStore(root, hmac.new(settings.secret.encode(), b"minsheng-object-urls", hashlib.sha256).digest())


def object_store(runtime: Any) -> ObjectStore:
    """The store of a running service (``ServiceRuntime``), made on first use and kept in its state."""
    store = runtime.state.get("object_store")
    if store is None:
        store = runtime.state["object_store"] = make_store(runtime.settings)
    return store  # type: ignore[no-any-return]


@asynccontextmanager
async def store_lifespan(runtime: Any) -> AsyncIterator[None]:
    """A service's ``ServiceSpec.lifespan`` when it keeps files: the bucket made when missing (best effort: an
    object store that is down at start only fails the uploads), the store's connections closed at stop."""
    store = object_store(runtime)
    if isinstance(store, LocalStore) and runtime.settings.mode == "distributed":
        log.warning(
            "%s: photos are kept on this machine's disk (%s): set MINSHENG_STORAGE_S3_ENDPOINT, or share "
            "the directory between replicas",
            runtime.name,
            store.root,
        )
    if isinstance(store, S3Store):
        try:
            await store.ensure_bucket()
        except Exception as exc:
            log.warning("%s: object store bucket %r not checked: %s", runtime.name, store.bucket, exc)
    try:
        yield
    finally:
        await store.close()
        runtime.state.pop("object_store", None)


def objects_router() -> APIRouter:
    """``GET /objects/{key}``: what a ``LocalStore`` signed URL points at (404 with another store)."""
    router = APIRouter(tags=["photos"], include_in_schema=False)

    @router.get("/objects/{key:path}")
    async def signed_object(key: str, request: Request, expires: str = "", signature: str = "") -> Response:
        store = object_store(request.app.state.runtime)
        if not isinstance(store, LocalStore):
            raise not_found("object", key)
        try:
            check_key(key)
        except ValueError:
            raise not_found("object", key) from None
        if not store.verify(key, expires, signature):
            raise Problem(403, "url_signature_invalid", "Link expired or invalid", "Ask the API for a fresh photo URL.")
        found = await store.get(key)
        if found is None:
            raise not_found("object", key)
        return Response(
            found.data,
            media_type=found.content_type,
            headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return router
