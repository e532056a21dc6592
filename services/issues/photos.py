"""Photos residents and staff attach to reports and resolutions: uploaded as wx.uploadFile sends them, checked
and cleaned by the platform (``minsheng.platform.photos``), kept in the object store, never in this database.

Photos from before the object store kept their bytes (with their EXIF) in ``issue_photos.data``.
``move_photos_out_of_the_database`` moves them — cleaned like a new upload — into the store and empties the
column: a job every replica runs (rows claimed with SKIP LOCKED), and ``minsheng photos migrate`` to finish it
at once. Not an Alembic data migration: it needs the object store and decodes every photo, which has no place
inside the schema transaction every replica runs at start.
"""

from __future__ import annotations

from uuid import UUID

from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import move_into_store, owned_photo_paths
from minsheng.platform.service import Job, ServiceRuntime
from minsheng.platform.storage import object_store
from minsheng.platform.uow import UnitOfWork
from services.issues import config
from services.issues.models import Photo


def limits() -> ImageLimits:
    return ImageLimits(max_bytes=config.get().photo_max_bytes)


def may_upload(who: Principal) -> bool:
    return not (who.has(Role.merchant) and not who.has(Role.resident, Role.staff, Role.admin))


async def photo_urls_of(uow: UnitOfWork, who: Principal, ids: list[UUID]) -> list[str]:
    """The stored paths of photos ``who`` uploaded, for a report or a resolution."""
    return await owned_photo_paths(uow, Photo, "issues", who.sub, ids)


async def move_photos_out_of_the_database(runtime: ServiceRuntime, batch: int = 20) -> int:
    """Move photos whose bytes are still in the database into the object store; how many were moved."""
    store = object_store(runtime)
    moved = 0
    # A transaction per batch, deliberately: a failure keeps the batches already moved, and no lock is held
    # for the whole run.
    while True:
        async with runtime.uow() as uow:
            query = select(Photo).where(col(Photo.data).is_not(None)).order_by(col(Photo.id)).limit(batch)
            if uow.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            photos = list((await uow.session.execute(query)).scalars())
            for photo in photos:
                moved += await move_into_store(store, "issues", photo)
            await uow.commit()
        if len(photos) < batch:
            return moved


async def _job(runtime: ServiceRuntime) -> int:
    return await move_photos_out_of_the_database(runtime)


MOVE_JOB = Job("issues-photos-out-of-database", 300, _job)
