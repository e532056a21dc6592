"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from minsheng.platform.errors import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v
                      for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """Decode a cursor made by ``encode_cursor``; ``types`` (datetime, UUID, int, str) say how to read it."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif kind is UUID:
                out.append(UUID(value))
            else:
                out.append(kind(value))
        return tuple(out)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise Problem(422, "invalid_cursor", "Invalid cursor", "Use the next_cursor of a previous page.",
                      errors=[{"field": "cursor", "message": str(exc), "type": "value_error"}]) from exc


def page_of(rows: list[T], limit: int, cursor_of: Any) -> Page[T]:
    """``rows`` was fetched with ``limit + 1``: the extra row only tells whether there is a next page."""
    has_more = len(rows) > limit
    items = rows[:limit]
    return Page[T](items=items, next_cursor=cursor_of(items[-1]) if has_more and items else None)
