"""The canteen service's data: its own registry and metadata (its own database)."""

from __future__ import annotations

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from minsheng.platform.tables import install_platform_tables


class CanteenModel(SQLModel, registry=registry()):
    pass


metadata = CanteenModel.metadata
platform_tables = install_platform_tables(metadata)
