"""Field helpers every service's SQLModel tables use: time-ordered UUID keys, UTC times, JSON lists."""

from __future__ import annotations

from typing import Any

from sqlmodel import Field

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.types import JSONType, UTCDateTime


def uuid_pk() -> Any:
    """A UUIDv7 primary key, generated in Python so events can name the row before it is flushed."""
    return Field(default_factory=uuid7, primary_key=True)


def utc_now() -> Any:
    """A timezone-aware UTC time defaulting to now (created_at, updated_at …)."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


def utc_optional() -> Any:
    """A timezone-aware UTC time, empty until something happens (resolved_at …)."""
    return Field(default=None, sa_type=UTCDateTime)


def json_list() -> Any:
    return Field(default_factory=list, sa_type=JSONType)
