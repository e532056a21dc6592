"""Input types every service uses for query parameters, path parameters and bodies.

One definition each, so that no input can reach the code as a value it cannot handle (a naive time, a year
whose UTC conversion overflows, a nested cursor, a NUL byte):

- ``Instant``: a point in time. An offset is required (``2026-11-01T08:00:00+08:00`` or ``…Z``); a bare date
  (``2026-11-01``) means the start of that day in China (Asia/Shanghai, UTC+8); a time without an offset is
  refused with a 422 that says so. Always returned in UTC, between ``MIN_INSTANT`` and ``MAX_INSTANT``.
- ``Day``: a calendar date between 1900-01-01 and 2199-12-31 (birth dates of the oldest residents fit;
  ``date + timedelta`` and ``datetime.combine(…, tz)`` never overflow).
- ``MonthText``: ``YYYY-MM`` within the same range; ``month_start()`` turns it into the first day.
- ``Latitude``/``Longitude``: finite WGS-84 degrees.
- ``text(n)``: at most ``n`` characters, no NUL byte (PostgreSQL refuses them; SQLite would store them):
  ``title: Annotated[str, text(200)]``, ``community: Annotated[str | None, text(64)] = None`` (metadata, so
  that type checkers see a ``str``).
- ``Cursor``: an opaque keyset cursor, bounded in length; ``pagination.decode_cursor`` reads it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlsplit

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2199, 12, 31)
MIN_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
CURSOR_MAX_LENGTH = 512

_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def _bare_date_is_china_midnight(value: Any) -> Any:
    if isinstance(value, str) and _BARE_DATE.fullmatch(value.strip()):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"not a date: {exc}") from None
        _day_in_range(day)
        return datetime.combine(day, time.min, CHINA)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(_day_in_range(value), time.min, CHINA)
    return value


def aware_utc(value: datetime) -> datetime:
    """An aware time within range, in UTC; ``ValueError`` (a 422 under pydantic) otherwise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time needs an offset (e.g. 2026-11-01T08:00:00+08:00 or …Z), or give a bare date")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"time out of range: between {MIN_INSTANT:%Y-%m-%d} and {MAX_INSTANT:%Y-%m-%d}") from None
    if not MIN_INSTANT <= utc < MAX_INSTANT:
        raise ValueError(f"time out of range: between {MIN_INSTANT:%Y-%m-%d} and {MAX_INSTANT:%Y-%m-%d}")
    return utc


def _day_in_range(value: date) -> date:
    if not MIN_DAY <= value <= MAX_DAY:
        raise ValueError(f"date out of range: between {MIN_DAY} and {MAX_DAY}")
    return value


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("text may not contain NUL bytes")
    return value


def _month(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected YYYY-MM")
    found = _MONTH.fullmatch(value)
    if found is None:
        raise ValueError("expected YYYY-MM, e.g. 2026-11")
    _day_in_range(date(int(found[1]), int(found[2]), 1))
    return value


Instant = Annotated[
    datetime,
    BeforeValidator(_bare_date_is_china_midnight),
    AfterValidator(aware_utc),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Day = Annotated[date, AfterValidator(_day_in_range)]
MonthText = Annotated[
    str, BeforeValidator(_month), WithJsonSchema({"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"})
]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Cursor = Annotated[str, StringConstraints(max_length=CURSOR_MAX_LENGTH)]
NoNulText = Annotated[str, AfterValidator(_no_nul)]


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """The constraints of ``text(n)``: a length and no NUL byte, on a ``str`` or ``str | None``."""

    max_length: int
    min_length: int = 0

    def __iter__(self) -> Iterator[Any]:
        yield StringConstraints(min_length=self.min_length or None, max_length=self.max_length)
        yield AfterValidator(_no_nul)


def text(max_length: int, *, min_length: int = 0) -> Text:
    """Bounded text without NUL bytes: ``title: Annotated[str, text(200)]`` (an input longer than its column is
    a 422, never a database error)."""
    return Text(max_length, min_length)


def month_start(value: str) -> date:
    """The first day of a ``MonthText`` (already validated)."""
    return date(int(value[:4]), int(value[5:7]), 1)


def parse_instant(value: str) -> datetime:
    """The same rules for hand-parsed input (Open311's w3 dates): ``ValueError`` on anything outside them."""
    converted = _bare_date_is_china_midnight(value)
    if isinstance(converted, str):
        try:
            converted = datetime.fromisoformat(converted.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not a date-time") from None
    return aware_utc(converted)


# --- photo URLs ------------------------------------------------------------------------------------------------

PHOTO_URL_MAX_LENGTH = 500
_PRIVATE_NAMES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet")


def photo_url(url: str) -> str:
    """A stored reference to a photo somebody else hosts: ``https://`` on a public host name or address.

    Refused: other schemes (``http:``, ``javascript:``, ``file:``), credentials in the URL, IP literals that
    are private, loopback, link-local (169.254.169.254, the cloud metadata address), multicast, reserved or
    unspecified, and names that only resolve inside a network (``localhost``, ``*.local``, ``*.internal`` …).
    Names are not resolved here (DNS answers change); whoever fetches a stored URL must not follow it into a
    private network either. Uploads to the service's own storage use ``photo_ids`` instead."""
    if not isinstance(url, str) or len(url) > PHOTO_URL_MAX_LENGTH or "\x00" in url:
        raise ValueError(f"photo URLs are https URLs of at most {PHOTO_URL_MAX_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname or not url.lower().startswith("https://"):
        raise ValueError("photo URLs must use https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("photo URLs may not carry credentials")
    host = parts.hostname.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if not address.is_global or address.is_multicast:
            raise ValueError("photo URLs may not point at private, loopback or link-local addresses")
    elif host.endswith(_PRIVATE_NAMES) or host == "localhost" or "." not in host:
        raise ValueError("photo URLs must name a public host")
    return url


def photo_urls(urls: list[str]) -> list[str]:
    """``@field_validator("photo_urls")`` body: every URL checked by ``photo_url``."""
    return [photo_url(u) for u in urls]


# --- NUL bytes in requests -------------------------------------------------------------------------------------

_JSON_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
_CHECKED_BODIES = ("application/json", "application/x-www-form-urlencoded", "text/plain")


class RefuseNulMiddleware:
    """Answers 422 ``nul_byte`` to a request whose query string, path or JSON/form body carries a NUL
    character. PostgreSQL refuses NUL in text (and ``\\u0000`` in JSONB); SQLite would store it: both run modes
    refuse it the same way, before any handler runs, for every field of every service. Binary uploads
    (multipart photos) are not inspected."""

    def __init__(self, app: Any, foreign_formats: Any = ()) -> None:
        self.app = app
        self.foreign_formats = tuple(foreign_formats)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query or "\x00" in scope.get("path", ""):
            await self._refuse(scope, receive, send, "query", self.foreign_formats)
            return
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
                break
        if not content_type.startswith(_CHECKED_BODIES):
            await self.app(scope, receive, send)
            return
        messages = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if b"\x00" in body or _JSON_NUL.search(body) or (b"%00" in body and "urlencoded" in content_type):
            await self._refuse(scope, receive, send, "body", self.foreign_formats)
            return

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Any, receive: Any, send: Any, where: str, foreign: Any = ()) -> None:
        from starlette.requests import Request

        from minsheng.platform.errors import problem_response

        path = scope.get("path", "")
        for marker, render in foreign:
            if marker in path:
                await render(path, "Text may not contain NUL bytes (U+0000).")(scope, receive, send)
                return
        response = problem_response(
            Request(scope, receive),
            422,
            "nul_byte",
            "The request is not valid",
            "Text may not contain NUL bytes (U+0000).",
            extra={"errors": [{"field": where, "message": "NUL byte", "type": "value_error"}]},
        )
        await response(scope, receive, send)
