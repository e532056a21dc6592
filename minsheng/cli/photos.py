"""Uploaded photos (docs/photos.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from minsheng.cli.common import service_runtime, settings_from_env

photos_app = typer.Typer(help="Uploaded photos (docs/photos.md).", no_args_is_help=True)


@photos_app.command("migrate")
def photos_migrate() -> None:
    """Move the issues photos still kept in the database (from before the object store) into the object store,
    cleaned like new uploads (EXIF and GPS dropped). Idempotent; the issues service also does it in the
    background every 5 minutes."""
    from minsheng.platform.storage import store_lifespan
    from minsheng.runner import service_module

    photos: Any = service_module("issues", "photos")
    settings = settings_from_env()

    async def go() -> int:
        rt = service_runtime("issues", settings)
        try:
            async with store_lifespan(rt):
                return int(await photos.move_photos_out_of_the_database(rt))
        finally:
            await rt.db.dispose()

    typer.echo(f"{asyncio.run(go())} photos moved to the {settings.storage_backend_in_use} object store")
