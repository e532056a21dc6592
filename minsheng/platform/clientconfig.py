"""``GET /<service>/config``: what a client needs to know before its first call — languages, coordinate
systems, page sizes, upload limits and accepted types, text length limits, and (issues) the categories a
resident picks from. Anonymous and cacheable (``Cache-Control`` + a strong ``ETag``, 304 on
``If-None-Match``), so a mini-program reads it at launch and revalidates it for free.

One router factory for every service: the platform fills what is the same everywhere and what the service's
own OpenAPI document already says (text lengths of each write's body), a service's ``ClientConfigSource``
adds its own (uploads, categories).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from minsheng.platform.coords import CoordSystem
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    from minsheng.platform.service import ServiceRuntime

DEFAULT_LANGUAGE = "zh-CN"
LANGUAGES = ("zh-CN", "en")
# What each kind of client sends when it reads a position from its own platform: WeChat's map,
# wx.getLocation({type: 'gcj02'}) and wx.chooseLocation give GCJ-02; a browser's navigator.geolocation and
# Open311 (by its spec) WGS-84; Baidu's SDK BD-09. An input without `coord_system` is WGS-84.
COORDINATES_BY_CLIENT = {
    "mini_program": CoordSystem.gcj02,
    "h5": CoordSystem.wgs84,
    "app_amap_tencent": CoordSystem.gcj02,
    "app_baidu": CoordSystem.bd09,
    "open311": CoordSystem.wgs84,
}
CONFIG_MAX_AGE_SECONDS = 300


class Languages(BaseModel):
    default: str = Field(description="Used without an Accept-Language header")
    supported: list[str]


class Coordinates(BaseModel):
    supported: list[CoordSystem]
    stored: CoordSystem = Field(description="Positions are kept, compared and returned by default in this system")
    default: CoordSystem = Field(description="What a position without `coord_system` is taken to be")
    by_client: dict[str, CoordSystem] = Field(description="The `coord_system` each kind of client should send")


class PageSizes(BaseModel):
    default: int = Field(description="Items per page without `limit`")
    max: int = Field(description="The largest `limit` a list accepts")


class UploadLimit(BaseModel):
    path: str = Field(description="Where to POST the file (multipart/form-data, one file per request)")
    field: str = Field(description="The form field carrying the file (wx.uploadFile's `name`)")
    max_bytes: int
    accepted_types: list[str] = Field(description="Checked from the bytes, not from the file name")
    max_per_item: int | None = Field(default=None, description="How many may be attached to one item")


class CategoryOption(BaseModel):
    code: str
    name_zh: str
    name_en: str
    group: str
    urgent: bool


class ClientConfig(BaseModel):
    service: str
    api_version: str
    languages: Languages
    coordinates: Coordinates
    page_sizes: PageSizes
    uploads: list[UploadLimit] = Field(description="Where and what files may be uploaded (none: an empty list)")
    text_limits: dict[str, dict[str, int]] = Field(
        description="Per operation id: each text field of the body and its maximum length"
    )
    categories: list[CategoryOption] | None = Field(default=None, description="Issues: what a resident may report")


@dataclass(frozen=True)
class ClientConfigSource:
    """What a service adds to its ``/config``: its uploads (read at each request, the limits are settings)
    and, for issues, the active categories (read from its database)."""

    uploads: Callable[[], Sequence[UploadLimit]] = lambda: ()
    categories: Callable[[ServiceRuntime], Awaitable[list[CategoryOption]]] | None = None


def text_limits(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    """From an OpenAPI document: for each operation with a JSON body, its top-level text fields' maxLength."""
    schemas = document.get("components", {}).get("schemas", {})
    limits: dict[str, dict[str, int]] = {}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "")
            properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            fields = {name: length for name, prop in properties.items() if (length := _max_length(prop)) is not None}
            if fields:
                limits[operation["operationId"]] = fields
    return limits


def _max_length(prop: dict[str, Any]) -> int | None:
    for option in (prop, *prop.get("anyOf", ())):
        if option.get("type") == "string" and "maxLength" in option:
            return int(option["maxLength"])
    return None


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def client_config_router(service: str, source: ClientConfigSource | None, *, api_version: str) -> APIRouter:
    from minsheng.platform.service import runtime_of  # the service module imports this one's types

    source = source or ClientConfigSource()
    router = APIRouter(tags=["client"])
    static: dict[str, Any] = {}

    @router.get(
        "/config",
        response_model=ClientConfig,
        summary="What a client needs before its first call (anonymous, cacheable: revalidate with If-None-Match)",
        responses={304: {"description": "Not modified: the copy the ETag names is current"}},
    )
    async def client_config(
        request: Request,
        if_none_match: Annotated[
            str | None, Header(description="The ETag of the copy you hold", max_length=1024)
        ] = None,
    ) -> Response:
        if not static:
            static["text_limits"] = text_limits(request.app.openapi())
        config = ClientConfig(
            service=service,
            api_version=api_version,
            languages=Languages(default=DEFAULT_LANGUAGE, supported=list(LANGUAGES)),
            coordinates=Coordinates(
                supported=list(CoordSystem),
                stored=CoordSystem.wgs84,
                default=CoordSystem.wgs84,
                by_client=dict(COORDINATES_BY_CLIENT),
            ),
            page_sizes=PageSizes(default=DEFAULT_LIMIT, max=MAX_LIMIT),
            uploads=list(source.uploads()),
            text_limits=static["text_limits"],
            categories=await source.categories(runtime_of(request)) if source.categories else None,
        )
        body = config.model_dump_json(exclude_none=True).encode()
        etag = etag_of(body)
        headers = {"Cache-Control": f"public, max-age={CONFIG_MAX_AGE_SECONDS}", "ETag": etag}
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return router
