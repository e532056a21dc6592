"""What the issues service adds to its ``GET /issues/config``: photo uploads and the categories to pick from."""

from __future__ import annotations

from sqlmodel import col, select

from minsheng.platform.clientconfig import CategoryOption, ClientConfigSource, UploadLimit
from minsheng.platform.service import ServiceRuntime
from services.issues import config
from services.issues.models import Category

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
MAX_CATEGORIES = 500


def uploads() -> list[UploadLimit]:
    settings = config.get()
    return [
        UploadLimit(
            path="/issues/photos",
            field="file",
            max_bytes=settings.photo_max_bytes,
            accepted_types=list(PHOTO_TYPES),
            max_per_item=settings.photo_max_count,
        )
    ]


async def categories(runtime: ServiceRuntime) -> list[CategoryOption]:
    async with runtime.uow(read_only=True) as uow:
        query = select(Category).where(col(Category.active).is_(True)).order_by(col(Category.code))
        rows = (await uow.session.execute(query.limit(MAX_CATEGORIES))).scalars()
        return [
            CategoryOption(code=c.code, name_zh=c.name_zh, name_en=c.name_en, group=c.group, urgent=c.urgent)
            for c in rows
        ]


CLIENT_CONFIG = ClientConfigSource(uploads=uploads, categories=categories)
