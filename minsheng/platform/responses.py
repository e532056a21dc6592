"""JSON answers serialised once (see docs/platform.md → Hot paths).

A view that returns a model lets FastAPI validate it against ``response_model`` and then serialise it: for an
answer built from validated data, that second validation is pure cost (on a 50-item issue page, more than the
query). These helpers serialise with pydantic-core's Rust serializer and hand FastAPI a finished ``Response``;
the view keeps its ``response_model=`` for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def validated_json(model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``model`` (already validated: built by validation, or from data that was) as JSON, as FastAPI would
    serialise it for ``response_model=type(model)``: by alias, ``None`` fields included."""
    body = model.__pydantic_serializer__.to_json(model, by_alias=True)
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def plain_json(data: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Plain data (dicts, lists, UUIDs, datetimes, enums, models) as JSON with pydantic-core, no validation:
    for answers built straight from rows in the shape of their response model."""
    return Response(pydantic_core.to_json(data), status_code=status_code, media_type=JSON, headers=headers)
