"""Photo uploads as ``wx.uploadFile`` sends them, one helper for every service that takes photos.

``wx.uploadFile`` posts ``multipart/form-data`` with one file in the field ``file`` (``name: 'file'``) plus any
``formData`` fields. The body is read as it streams in and the request is refused with a 413 as soon as it
passes the limit (a ``Content-Length`` over it is refused before a byte is read). The bytes go through
``minsheng.platform.images`` (sniffed, pixel limit from the header, orientation applied, every bit of metadata
dropped, re-encoded, thumbnail) and into the object store (``minsheng.platform.storage``); the service's own
table (``PhotoFields``) keeps who uploaded what, never the bytes.

A photo is referred to by the stable path ``/<service>/photos/<id>``, which answers with a redirect to a
short-lived signed URL of the object (``/thumb`` for the thumbnail). Reports, proofs and resolutions take the
ids of the caller's own uploads only (``owned_photo_paths``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlmodel import Field, SQLModel, col, select

from minsheng.platform.auth import Principal, current_principal
from minsheng.platform.errors import Problem, invalid, not_found
from minsheng.platform.fields import uuid_pk
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.images import ImageLimits, process, too_large
from minsheng.platform.service import UoW, runtime_of
from minsheng.platform.storage import ObjectStore, object_store, objects_router
from minsheng.platform.types import UTCDateTime
from minsheng.platform.uow import UnitOfWork

log = logging.getLogger(__name__)
MULTIPART_OVERHEAD = 16 * 1024  # boundaries, part headers and small form fields around the one file


class PhotoFields(SQLModel):
    """The columns of a service's photos table (``class Photo(PhotoFields, <Service>Model, table=True)``)."""

    id: UUID = uuid_pk()
    owner: str = Field(max_length=200, index=True)
    storage_key: str | None = Field(default=None, max_length=300)
    thumb_key: str | None = Field(default=None, max_length=300)
    content_type: str = Field(max_length=40)
    source_type: str | None = Field(default=None, max_length=40)
    size: int
    width: int | None = None
    height: int | None = None
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PhotoPublic(BaseModel):
    id: UUID
    url: str  # the stable path: redirects to a short-lived signed URL
    thumb_url: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None


def photo_path(service: str, photo_id: UUID | str) -> str:
    return f"/{service}/photos/{photo_id}"


def public(service: str, photo: PhotoFields) -> PhotoPublic:
    path = photo_path(service, photo.id)
    return PhotoPublic(
        id=photo.id,
        url=path,
        thumb_url=f"{path}/thumb",
        content_type=photo.content_type,
        size=photo.size,
        width=photo.width,
        height=photo.height,
    )


async def read_upload(request: Request, max_bytes: int, field: str = "file") -> bytes:
    """The one file of a multipart/form-data request, read as it streams in: 413 past ``max_bytes``."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(
            415,
            "upload_not_multipart",
            "Send the photo as multipart/form-data",
            _t("One file in the form field '{field}' (what wx.uploadFile sends with name: '{field}').", field=field),
        )
    body_limit = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large(max_bytes)
    parts: list[tuple[str, bytearray]] = []
    header_name = bytearray()
    header_value = bytearray()
    disposition = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        if header_name.lower() == b"content-disposition":
            disposition[:] = header_value
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, params = parse_options_header(bytes(disposition))
        parts.append((params.get(b"name", b"").decode("utf-8", "replace"), bytearray()))
        disposition.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        name, buffer = parts[-1]
        buffer.extend(data[start:end])
        if len(buffer) > (max_bytes if name == field else MULTIPART_OVERHEAD):
            raise too_large(max_bytes)

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except Problem:
        raise
    except Exception:
        raise _no_file(field) from None
    files = [bytes(buffer) for name, buffer in parts if name == field]
    if len(files) != 1:
        raise _no_file(field)
    return files[0]


def _no_file(field: str) -> Problem:
    return invalid(
        "upload_file_missing",
        "No photo in the upload",
        _t("Send exactly one file in the form field '{field}'.", field=field),
        field=field,
        message="one file expected",
    )


async def owned_photo_paths(uow: UnitOfWork, model: Any, service: str, owner: str, ids: list[UUID]) -> list[str]:
    """The stable paths of the photos the subject ``owner`` uploaded; 422 ``unknown_photo`` naming any other id."""
    if not ids:
        return []
    rows = await uow.session.execute(select(model.id).where(col(model.id).in_(ids), model.owner == owner))
    found = set(rows.scalars())
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise Problem(
            422,
            "unknown_photo",
            "Unknown photo",
            _t(
                "Upload photos with POST /{service}/photos first; only your own uploads can be attached.",
                service=service,
            ),
            errors=[
                {
                    "field": "photo_ids",
                    "message": f"not yours or not found: {', '.join(missing)}",
                    "type": "value_error",
                }
            ],
        )
    return [photo_path(service, i) for i in dict.fromkeys(ids)]


def refuse_photo_urls(urls: list[str], service: str) -> None:
    """Photo references are upload ids now: a request that still sends URLs is told what to do instead."""
    if urls:
        raise invalid(
            "photo_urls_not_accepted",
            "Photos are attached by upload id",
            _t("Upload each photo with POST /{service}/photos and send its id in photo_ids.", service=service),
            field="photo_urls",
            message="not accepted; use photo_ids",
        )


def photos_router(
    service: str,
    model: Any,
    limits: Callable[[], ImageLimits],
    may_upload: Callable[[Principal], bool] = lambda who: True,
) -> APIRouter:
    """``POST /photos`` (upload), ``GET /photos/{id}`` and ``GET /photos/{id}/thumb`` (redirects to signed
    URLs), and the local store's ``GET /objects/…``, for a service whose photos table is ``model``."""
    router = APIRouter(tags=["photos"])
    upload_body = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary", "description": "The image"}},
                    }
                }
            },
        }
    }

    @router.post(
        "/photos",
        response_model=PhotoPublic,
        status_code=201,
        summary="Upload one photo as wx.uploadFile sends it (form field `file`); attach it by id",
        openapi_extra=upload_body,
        responses={413: {"description": "Too large"}, 415: {"description": "Not an accepted image"}},
    )
    async def upload_photo(
        request: Request, uow: UoW, who: Annotated[Principal, Depends(current_principal)]
    ) -> PhotoPublic:
        if not may_upload(who):
            raise Problem(
                403,
                "forbidden_role",
                "Not allowed for your role",
                _t("Your role does not upload {service} photos.", service=service),
            )
        bounds = limits()
        data = await read_upload(request, bounds.max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        existing = await _same_upload(uow, model, who.sub, digest)
        if existing is not None:  # a retried upload (the phone lost the answer): the photo already made
            return public(service, existing)
        image = await asyncio.to_thread(process, data, bounds)
        photo = model(
            owner=who.sub,
            content_type=image.content_type,
            source_type=image.source_type,
            size=len(image.data),
            width=image.width,
            height=image.height,
            sha256=digest,
        )
        photo.storage_key = f"{service}/photos/{photo.id}.{image.extension}"
        photo.thumb_key = f"{service}/photos/{photo.id}.thumb.{image.extension}"
        store = object_store(runtime_of(request))
        async with _storage_errors():
            await store.put(photo.storage_key, image.data, image.content_type)
            await store.put(photo.thumb_key, image.thumb, image.content_type)
        uow.session.add(photo)
        await uow.commit()
        return public(service, photo)

    async def _redirect(request: Request, uow: UnitOfWork, photo_id: UUID, thumb: bool) -> RedirectResponse:
        runtime = runtime_of(request)
        photo = await uow.session.get(model, photo_id)
        if photo is not None and photo.storage_key is None and getattr(photo, "data", None):
            photo = await _moved_now(runtime, photo_id)  # an old photo asked for before the job reached it
        key = (photo.thumb_key if thumb else photo.storage_key) if photo is not None else None
        if photo is None or key is None:
            raise not_found("photo", photo_id)
        async with _storage_errors():
            url = await object_store(runtime).signed_url(key, runtime.settings.storage_signed_url_seconds)
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "private, no-store"})

    @router.get(
        "/photos/{photo_id}",
        status_code=302,
        response_class=RedirectResponse,
        summary="A photo: redirects to a short-lived signed URL (the unguessable id is the capability)",
    )
    async def get_photo(photo_id: UUID, request: Request, uow: UoW) -> RedirectResponse:
        return await _redirect(request, uow, photo_id, thumb=False)

    @router.get(
        "/photos/{photo_id}/thumb",
        status_code=302,
        response_class=RedirectResponse,
        summary="A photo's thumbnail (320 px): redirects to a short-lived signed URL",
    )
    async def get_thumb(photo_id: UUID, request: Request, uow: UoW) -> RedirectResponse:
        return await _redirect(request, uow, photo_id, thumb=True)

    async def _moved_now(runtime: Any, photo_id: UUID) -> Any:
        async with runtime.uow() as writing, _storage_errors():
            query = select(model).where(model.id == photo_id)
            if writing.db.is_postgres:
                query = query.with_for_update()
            photo = (await writing.session.execute(query)).scalars().first()
            if photo is not None and photo.storage_key is None and photo.data:
                await move_into_store(object_store(runtime), service, photo)
                await writing.commit()
            return photo

    router.include_router(objects_router())
    return router


@asynccontextmanager
async def _storage_errors() -> AsyncIterator[None]:
    """An object store that is down or refuses is a 503 the phone may retry (the upload is idempotent)."""
    try:
        yield
    except Problem:
        raise
    except Exception as exc:
        log.warning("object store failed: %s", exc)
        raise Problem(
            503,
            "storage_unavailable",
            "Photo storage unavailable",
            "The photo could not be stored just now; try again in a moment.",
            headers={"Retry-After": "5"},
        ) from None


async def move_into_store(store: ObjectStore, service: str, photo: Any) -> bool:
    """A photo whose bytes are still in its row (``photo.data``, from before the object store): cleaned like an
    upload, written to the store, the column emptied; False when the old bytes are unreadable (then dropped,
    rather than kept with their metadata). The caller commits."""
    data, photo.data = photo.data or b"", None
    try:
        image = await asyncio.to_thread(process, data, ImageLimits(max_bytes=max(len(data), 1)))
    except Problem as problem:
        log.warning("%s photo %s unreadable (%s): its old bytes are dropped", service, photo.id, problem.code)
        return False
    photo.storage_key = f"{service}/photos/{photo.id}.{image.extension}"
    photo.thumb_key = f"{service}/photos/{photo.id}.thumb.{image.extension}"
    await store.put(photo.storage_key, image.data, image.content_type)
    await store.put(photo.thumb_key, image.thumb, image.content_type)
    photo.source_type, photo.content_type = image.source_type, image.content_type
    photo.size, photo.width, photo.height = len(image.data), image.width, image.height
    return True


async def _same_upload(uow: UnitOfWork, model: Any, owner: str, digest: str) -> Any:
    rows = await uow.session.execute(
        select(model).where(model.owner == owner, model.sha256 == digest, sa.not_(col(model.storage_key).is_(None)))
    )
    return rows.scalars().first()
