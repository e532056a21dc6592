"""Open311 GeoReport v2 (``/issues/open311/v2/``) over the same catalogue and issues: discovery, services,
service definitions, POST requests (API key), tokens, GET requests and GET one request, each in ``.json`` and
``.xml``, with the spec's error format. Extensions: ``page``/``page_size`` on GET requests, and
``community``/``compound`` on POST.

Staff manage the API keys at ``/issues/open311-keys`` (only a SHA-256 hash of each key is stored).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from xml.etree import ElementTree as ET

from fastapi.responses import Response
from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.inputs import aware_utc
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.uow import UnitOfWork
from services.issues import config, reporting
from services.issues.access import IssueLike
from services.issues.models import (
    OPEN_STATUSES,
    ApiKey,
    Category,
    Channel,
    Department,
    Issue,
    IssueCreate,
    IssueStatus,
    NotHandledMatter,
)

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-27T00:00:00Z"
MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
PLURAL = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# --- formats ------------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _append(parent: ET.Element, tag: str, value: Any) -> None:
    el = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for k, v in value.items():
            _append(el, k, v)
    elif isinstance(value, list):
        for item in value:
            _append(el, PLURAL.get(tag, "item"), item)
    else:
        el.text = _text(value)


def render(fmt: str, root: str, item: str | None, payload: Any, status: int = 200) -> Response:
    if fmt == "json":
        import json

        return Response(
            json.dumps(payload, ensure_ascii=False, default=str),
            status_code=status,
            media_type="application/json; charset=utf-8",
        )
    top = ET.Element(root)
    if item is None:
        for k, v in payload.items():
            _append(top, k, v)
    else:
        for entry in payload:
            el = ET.SubElement(top, item)
            for k, v in entry.items():
                _append(el, k, v)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def reply_format(extension: str) -> str:
    """The format to answer in: the one asked for, else XML (the spec's default)."""
    return extension if extension in ("json", "xml") else "xml"


def error(fmt: str, status: int, description: str) -> Response:
    return render(
        reply_format(fmt),
        "errors",
        "error",
        [{"code": status, "description": description}],
        status,
    )


def split_format(name: str) -> tuple[str, str]:
    """``638344.json`` → (``638344``, ``json``)."""
    stem, dot, fmt = name.rpartition(".")
    if not dot or fmt not in ("json", "xml"):
        raise Open311Error(404, f"Unknown format in {name!r}: use .json or .xml")
    return stem, fmt


def w3(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def parse_w3(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a w3 date/time such as 2010-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name} must include a time zone (Z or ±HH:MM)")
    try:
        return aware_utc(value)  # the platform's range: year 1 at +14:00 must not overflow
    except ValueError as exc:
        raise Open311Error(400, f"{name}: {exc}") from None


def check_jurisdiction(params: Any) -> None:
    jurisdiction = params.get("jurisdiction_id")
    if jurisdiction and jurisdiction != config.get().jurisdiction_id:
        raise Open311Error(
            404, f"jurisdiction_id {jurisdiction!r} not found; this endpoint serves {config.get().jurisdiction_id}"
        )


async def guarded(fmt: str, action: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await action()
    except Open311Error as exc:
        return error(fmt, exc.status, exc.description)
    except Problem as exc:
        status = exc.status if exc.status in (403, 404) else 400
        return error(fmt, status, f"{exc.code}: {exc.detail or exc.title}")


# --- use cases (the routes are in views/open311.py and views/open311_keys.py) ------------------------------


async def active_services(uow: UnitOfWork) -> list[Category]:
    query = select(Category).where(col(Category.active).is_(True)).order_by(col(Category.code))
    return list((await uow.session.execute(query)).scalars())


async def active_service(uow: UnitOfWork, code: str, *, not_handled_status: int) -> Category:
    """The active category behind a service_code; a matter not handled here is refused with where to go."""
    cat = await uow.session.get(Category, code)
    if cat is None or not cat.active:
        matter = await uow.session.get(NotHandledMatter, code)
        if matter is not None:
            raise Open311Error(not_handled_status, f"{matter.title_en} is not handled here. Go to: {matter.go_to_en}")
        raise Open311Error(404, f"service_code {code!r} not found")
    return cat


def _api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def check_api_key(uow: UnitOfWork, key: str | None) -> ApiKey:
    if not key:
        raise Open311Error(403, "api_key is required to create a service request")
    parts = key.split("_")
    prefix = parts[1] if len(parts) == 3 and parts[0] == "ms311" else None
    found = await uow.session.execute(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    row = found.scalar() if found is not None else None
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _api_key_hash(key)):
        raise Open311Error(403, "Invalid api_key received -- can't proceed with create_request.")
    return row


async def create_request(
    uow: UnitOfWork, key: ApiKey, account_id: str | None, body: IssueCreate, cipher: FieldCipher
) -> IssueLike:
    """Report the issue for the key's client (and its account, when it names one)."""
    who = Principal(
        sub=f"open311:{key.name}" + (f":{account_id}" if account_id else ""), roles=frozenset({Role.resident})
    )
    issue, _, _ = await reporting.report_issue(
        uow, who, body, cipher=cipher, channel=Channel.open311, open311_token=reporting.new_token()
    )
    key.last_used_at = utcnow()
    return issue


async def related(uow: UnitOfWork, issues: list[Issue]) -> tuple[dict[str, Category], dict[str, Department]]:
    """The categories of ``issues`` and the departments responsible for them (the first assigned, else the
    category's), by code."""
    codes = {i.category for i in issues}
    cats = {
        c.code: c for c in (await uow.session.execute(select(Category).where(col(Category.code).in_(codes)))).scalars()
    }
    dept_codes = {responsible(i, cats) for i in issues}
    depts = {
        d.code: d
        for d in (await uow.session.execute(select(Department).where(col(Department.code).in_(dept_codes)))).scalars()
    }
    return cats, depts


def responsible(issue: Issue, cats: dict[str, Category]) -> str | None:
    cat = cats.get(issue.category)
    return issue.departments[0] if issue.departments else cat.department if cat else None


def _public() -> list[Any]:
    return [col(Issue.is_public).is_(True), Issue.status != IssueStatus.merged]


async def find_requests(
    uow: UnitOfWork,
    *,
    ids: list[UUID] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    codes: list[str] | None = None,
    statuses: set[str] | None = None,
    page: int = 1,
    size: int = MAX_RESULTS,
) -> list[Issue]:
    """Public requests, newest first: those with ``ids`` (which override every other argument), else those
    reported between ``start`` and ``end`` with the service codes and open/closed statuses given."""
    query = select(Issue).where(*_public())
    if ids is not None:
        query = query.where(col(Issue.id).in_(ids[:MAX_RESULTS]))
    else:
        query = query.where(col(Issue.created_at) >= start, col(Issue.created_at) <= end)
        if codes:
            query = query.where(col(Issue.category).in_(codes))
        open_values = [s.value for s in OPEN_STATUSES]
        if statuses == {"open"}:
            query = query.where(col(Issue.status).in_(open_values))
        elif statuses == {"closed"}:
            query = query.where(col(Issue.status).not_in(open_values))
    query = query.order_by(col(Issue.created_at).desc(), col(Issue.id).desc()).offset((page - 1) * size).limit(size)
    return list((await uow.session.execute(query)).scalars())


async def public_request(uow: UnitOfWork, ident: UUID) -> Issue | None:
    return (await uow.session.execute(select(Issue).where(Issue.id == ident, *_public()))).scalar()


async def request_of_token(uow: UnitOfWork, token: str) -> UUID | None:
    if not token:
        return None
    return (await uow.session.execute(select(Issue.id).where(Issue.open311_token == token))).scalar()


# --- API keys -----------------------------------------------------------------------------------------------


def issue_key(uow: UnitOfWork, name: str, who: Principal) -> tuple[ApiKey, str]:
    """A new key (returned once, in clear) and its row (which keeps only a hash)."""
    prefix = secrets.token_hex(4)
    key = f"ms311_{prefix}_{secrets.token_urlsafe(24).replace('_', '-')}"
    row = ApiKey(name=name, prefix=prefix, key_hash=_api_key_hash(key), created_by=who.sub)
    uow.session.add(row)
    return row, key


_KEYS_NEWEST_FIRST = Keyset((ApiKey.created_at, ApiKey.id))


async def list_keys(uow: UnitOfWork, page: PageRequest) -> Page[ApiKey]:
    return await keyset_page(uow.session, select(ApiKey), _KEYS_NEWEST_FIRST, page)


async def revoke_key(uow: UnitOfWork, key_id: UUID) -> ApiKey:
    row = await uow.session.get(ApiKey, key_id)
    if row is None:
        raise not_found("api_key", key_id)
    row.revoked_at = row.revoked_at or utcnow()
    return row


def refused(path: str, description: str) -> Response:
    """A request the platform refused before any route ran (NUL bytes), in the Open311 error shape."""
    return error("json" if path.endswith(".json") else "xml", 400, description)
