"""Photos residents and staff attach to reports and resolutions: type and size checked by content, not by
the name the phone gave the file."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import Response

from minsheng.platform.auth import Principal, Role, current_principal
from minsheng.platform.errors import Problem, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.service import UoW
from services.issues.config import get_config
from services.issues.models import Photo, PhotoPublic

router = APIRouter(tags=["photos"])


def sniff(head: bytes) -> str | None:
    """The image type from its magic bytes (JPEG, PNG, WebP, HEIC from iPhones), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "image/heic"
    return None


@router.post(
    "/photos",
    response_model=PhotoPublic,
    status_code=201,
    summary="Upload a photo (JPEG, PNG, WebP, HEIC; at most 5 MB); attach it by id to a report",
)
async def upload_photo(
    uow: UoW,
    who: Annotated[Principal, Depends(current_principal)],
    file: Annotated[UploadFile, File(description="The image")],
) -> PhotoPublic:
    if who.has(Role.merchant) and not who.has(Role.resident, Role.staff, Role.admin):
        raise Problem(403, "forbidden_role", "Not allowed for your role", "Merchants do not upload issue photos.")
    limit = get_config().photo_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise Problem(
            413, "photo_too_large", "Photo too large", _t("At most {megabytes} MB.", megabytes=limit // (1024 * 1024))
        )
    if not data:
        raise Problem(
            422,
            "photo_empty",
            "Empty file",
            "The upload has no bytes.",
            errors=[{"field": "file", "message": "empty", "type": "value_error"}],
        )
    kind = sniff(data[:16])
    if kind is None:
        raise Problem(415, "photo_type_not_allowed", "Not an accepted image", "Send a JPEG, PNG, WebP or HEIC image.")
    photo = Photo(owner=who.sub, content_type=kind, size=len(data), sha256=hashlib.sha256(data).hexdigest(), data=data)
    uow.session.add(photo)
    await uow.commit()
    return PhotoPublic(id=photo.id, url=f"/issues/photos/{photo.id}", content_type=kind, size=len(data))


@router.get(
    "/photos/{photo_id}",
    response_class=Response,
    summary="A photo by id (the unguessable id is the capability; no token, so <img> tags work)",
)
async def get_photo(photo_id: UUID, uow: UoW) -> Response:
    photo = await uow.session.get(Photo, photo_id)
    if photo is None:
        raise not_found("photo", photo_id)
    return Response(
        photo.data,
        media_type=photo.content_type,
        headers={
            "Cache-Control": "private, max-age=86400, immutable",
            "ETag": f'"{photo.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
