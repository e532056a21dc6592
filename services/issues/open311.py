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
from typing import Annotated, Any
from uuid import UUID
from xml.etree import ElementTree as ET

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.inputs import aware_utc, photo_url
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.privacy import field_cipher
from minsheng.platform.service import UoW, runtime_of
from minsheng.platform.uow import UnitOfWork
from services.issues import intake
from services.issues.catalogue import catalogue_manager
from services.issues.config import get_config
from services.issues.models import (
    OPEN_STATUSES,
    ApiKey,
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyPublic,
    AttributeDef,
    Category,
    Channel,
    Contact,
    Department,
    Issue,
    IssueCreate,
    IssueStatus,
    NotHandledMatter,
)

router = APIRouter(tags=["open311"])
keys_router = APIRouter(tags=["open311"])
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


def error(fmt: str, status: int, description: str) -> Response:
    return render(
        fmt if fmt in ("json", "xml") else "xml",
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


def _check_jurisdiction(params: Any) -> None:
    jurisdiction = params.get("jurisdiction_id")
    if jurisdiction and jurisdiction != get_config().jurisdiction_id:
        raise Open311Error(
            404, f"jurisdiction_id {jurisdiction!r} not found; this endpoint serves {get_config().jurisdiction_id}"
        )


async def guarded(fmt: str, action: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await action()
    except Open311Error as exc:
        return error(fmt, exc.status, exc.description)
    except Problem as exc:
        status = exc.status if exc.status in (403, 404) else 400
        return error(fmt, status, f"{exc.code}: {exc.detail or exc.title}")


def _name(request: Request, cat: Category) -> str:
    lang = (request.query_params.get("locale") or request.headers.get("accept-language") or "zh").lower()
    return cat.name_en if lang.startswith("en") else cat.name_zh


# --- discovery and services ---------------------------------------------------------------------------------


@router.get("/discovery.{fmt}", summary="Service discovery")
async def discovery(fmt: str, request: Request) -> Response:
    if fmt not in ("json", "xml"):
        return error("xml", 404, "Unknown format: use .json or .xml")
    base = str(request.url).rsplit("/", 1)[0]
    cfg = get_config()
    return render(
        fmt,
        "discovery",
        None,
        {
            "changeset": CHANGESET,
            "contact": cfg.open311_contact,
            "key_service": "Ask the county's issues desk for an API key (staff issue them at /issues/open311-keys).",
            "endpoints": [
                {
                    "specification": SPEC_URL,
                    "url": base,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        },
    )


@router.get("/services.{fmt}", summary="GET Service List")
async def services(fmt: str, request: Request, uow: UoW) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        _check_jurisdiction(request.query_params)
        cats = (
            await uow.session.execute(
                select(Category).where(col(Category.active).is_(True)).order_by(col(Category.code))
            )
        ).scalars()
        return render(
            fmt,
            "services",
            "service",
            [
                {
                    "service_code": c.code,
                    "service_name": _name(request, c),
                    "description": c.description or c.name_en,
                    "metadata": any(AttributeDef.model_validate(a).variable for a in c.attributes),
                    "type": "realtime",
                    "keywords": c.keywords,
                    "group": c.group,
                }
                for c in cats
            ],
        )

    return await guarded(fmt if fmt in ("json", "xml") else "xml", go)


@router.get("/services/{name}", summary="GET Service Definition (services/<service_code>.<format>)")
async def service_definition(name: str, request: Request, uow: UoW) -> Response:
    fmt = name.rpartition(".")[2] if name.rpartition(".")[2] in ("json", "xml") else "xml"

    async def go() -> Response:
        code, _ = split_format(name)
        _check_jurisdiction(request.query_params)
        cat = await uow.session.get(Category, code)
        if cat is None or not cat.active:
            matter = await uow.session.get(NotHandledMatter, code)
            if matter is not None:
                raise Open311Error(404, f"{matter.title_en} is not handled here. Go to: {matter.go_to_en}")
            raise Open311Error(404, f"service_code {code!r} not found")
        attrs = sorted((AttributeDef.model_validate(a) for a in cat.attributes), key=lambda a: a.order)
        return render(
            fmt,
            "service_definition",
            None,
            {
                "service_code": cat.code,
                "attributes": [
                    {
                        "variable": a.variable,
                        "code": a.code,
                        "datatype": a.datatype.value,
                        "required": a.required,
                        "datatype_description": a.datatype_description,
                        "order": a.order,
                        "description": a.description,
                        "values": [{"key": v.key, "name": v.name} for v in a.values],
                    }
                    for a in attrs
                ],
            },
        )

    return await guarded(fmt, go)


# --- requests -----------------------------------------------------------------------------------------------


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


def _attributes(form: Any) -> dict[str, Any]:
    """``attribute[CODE]=v`` and ``attribute[CODE][]=v1&attribute[CODE][]=v2`` → {CODE: v | [v1, v2]}."""
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        if not key.startswith("attribute[") or "]" not in key:
            continue
        code = key[len("attribute[") : key.index("]")]
        if key.endswith("[]"):
            out.setdefault(code, [])
            if isinstance(out[code], list):
                out[code].append(value)
        else:
            out[code] = value
    return out


def _float(form: Any, name: str) -> float | None:
    raw = form.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None


@router.post("/requests.{fmt}", summary="POST Service Request (form-encoded, api_key required)")
async def create_request(fmt: str, request: Request, uow: UoW) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        form = await request.form()
        _check_jurisdiction(form)
        key = await check_api_key(uow, str(form.get("api_key") or request.query_params.get("api_key") or "") or None)
        code = str(form.get("service_code") or "")
        if not code:
            raise Open311Error(400, "service_code was not provided")
        cat = await uow.session.get(Category, code)
        if cat is None or not cat.active:
            matter = await uow.session.get(NotHandledMatter, code)
            if matter is not None:
                raise Open311Error(400, f"{matter.title_en} is not handled here. Go to: {matter.go_to_en}")
            raise Open311Error(404, f"service_code {code!r} not found")
        lat, lng = _float(form, "lat"), _float(form, "long")
        address = str(form.get("address_string") or "") or None
        address_id = str(form.get("address_id") or "") or None
        if (lat is None) != (lng is None):
            raise Open311Error(400, "lat and long must be sent together")
        if lat is None and not address and not address_id:
            raise Open311Error(400, "A location is required: lat & long, address_string or address_id")
        account_id = str(form.get("account_id") or "") or None
        name = " ".join(str(form.get(n) or "") for n in ("first_name", "last_name")).strip() or None
        phone = str(form.get("phone") or "") or None
        media = str(form.get("media_url") or "") or None
        if media is not None:
            try:  # GeoReport v2 has no upload: a link, kept (never fetched) when it is https on a public host
                media = photo_url(media)
            except ValueError as exc:
                raise Open311Error(400, f"media_url: {exc}") from None
        attributes = _attributes(form)
        try:
            body = IssueCreate(
                category=code,
                description=str(form.get("description") or "")[:4000],
                latitude=lat,
                longitude=lng,
                address=address or (f"address_id:{address_id}" if address_id else None),
                community=str(form.get("community") or "") or None,
                compound=str(form.get("compound") or "") or None,
                photo_urls=[media] if media else [],
                attributes=attributes,
                contact=Contact(name=name, phone=phone) if name or phone else None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            raise Open311Error(400, f"{field or 'request'}: {first.get('msg')}") from None
        who = Principal(
            sub=f"open311:{key.name}" + (f":{account_id}" if account_id else ""), roles=frozenset({Role.resident})
        )
        settings = runtime_of(request).settings
        cipher = field_cipher(settings)
        issue, _, _ = await intake.report_issue(
            uow, who, body, cipher=cipher, channel=Channel.open311, open311_token=intake.new_token()
        )
        key.last_used_at = utcnow()
        await uow.commit()
        return render(
            fmt,
            "service_requests",
            "request",
            [{"service_request_id": str(issue.id), "service_notice": cat.service_notice, "account_id": account_id}],
        )

    return await guarded(fmt if fmt in ("json", "xml") else "xml", go)


async def _views(request: Request, uow: UnitOfWork, issues: list[Issue]) -> list[dict[str, Any]]:
    codes = {i.category for i in issues}
    cats = {
        c.code: c for c in (await uow.session.execute(select(Category).where(col(Category.code).in_(codes)))).scalars()
    }

    def owner(i: Issue) -> str | None:
        cat = cats.get(i.category)
        return i.departments[0] if i.departments else cat.department if cat else None

    dept_codes = {owner(i) for i in issues}
    depts = {
        d.code: d
        for d in (await uow.session.execute(select(Department).where(col(Department.code).in_(dept_codes)))).scalars()
    }
    origin = f"{request.url.scheme}://{request.url.netloc}"
    out = []
    for i in issues:
        cat = cats.get(i.category)
        dept = depts.get(owner(i) or "")
        closed = i.status not in OPEN_STATUSES
        media = i.photo_urls[0] if i.photo_urls else None
        out.append(
            {
                "service_request_id": str(i.id),
                "status": "closed" if closed else "open",
                "status_notes": i.status_note,
                "service_name": _name(request, cat) if cat else i.category,
                "service_code": i.category,
                "description": i.description or None,
                "agency_responsible": (
                    dept.name_en if request.query_params.get("locale", "").startswith("en") else dept.name_zh
                )
                if dept
                else None,
                "service_notice": cat.service_notice if cat else None,
                "requested_datetime": w3(i.created_at),
                "updated_datetime": w3(i.closed_at if closed and i.closed_at else i.updated_at),
                "expected_datetime": w3(i.resolution_due_at),
                "address": i.address,
                "address_id": None,
                "zipcode": None,
                "lat": i.latitude,
                "long": i.longitude,
                "media_url": (origin + media if media and media.startswith("/") else media),
            }
        )
    return out


def _public() -> list[Any]:
    return [col(Issue.is_public).is_(True), Issue.status != IssueStatus.merged]


@router.get("/requests.{fmt}", summary="GET Service Requests (90-day window, at most 1,000; page/page_size)")
async def list_requests(fmt: str, request: Request, uow: UoW) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        q = request.query_params
        _check_jurisdiction(q)
        query = select(Issue).where(*_public())
        ids_raw = q.get("service_request_id")
        if ids_raw:  # overrides every other argument
            ids: list[UUID] = []
            for raw in ids_raw.split(","):
                try:
                    ids.append(UUID(raw.strip()))
                except ValueError:
                    continue
            query = query.where(col(Issue.id).in_(ids[:MAX_RESULTS]))
            page, size = 1, MAX_RESULTS
        else:
            start = parse_w3("start_date", q["start_date"]) if q.get("start_date") else None
            end = parse_w3("end_date", q["end_date"]) if q.get("end_date") else None
            if start and end and end - start > MAX_SPAN:
                raise Open311Error(400, "start_date and end_date may not span more than 90 days")
            if start and end and end < start:
                raise Open311Error(400, "end_date is before start_date")
            if start is None and end is None:
                end = utcnow()
            if start is None:
                assert end is not None
                start = end - MAX_SPAN
            if end is None:
                end = start + MAX_SPAN
            query = query.where(col(Issue.created_at) >= start, col(Issue.created_at) <= end)
            codes = [c.strip() for c in (q.get("service_code") or "").split(",") if c.strip()]
            if codes:
                query = query.where(col(Issue.category).in_(codes))
            statuses = {s.strip() for s in (q.get("status") or "").split(",") if s.strip()}
            if statuses - {"open", "closed"}:
                raise Open311Error(400, "status must be open and/or closed")
            open_values = [s.value for s in OPEN_STATUSES]
            if statuses == {"open"}:
                query = query.where(col(Issue.status).in_(open_values))
            elif statuses == {"closed"}:
                query = query.where(col(Issue.status).not_in(open_values))
            try:
                page = int(q.get("page") or 1)
                size = int(q.get("page_size") or MAX_RESULTS)
            except ValueError:
                raise Open311Error(400, "page and page_size must be whole numbers") from None
            if page < 1 or not 1 <= size <= MAX_RESULTS:
                raise Open311Error(400, f"page must be ≥ 1 and page_size between 1 and {MAX_RESULTS}")
        query = query.order_by(col(Issue.created_at).desc(), col(Issue.id).desc()).offset((page - 1) * size).limit(size)
        issues = list((await uow.session.execute(query)).scalars())
        return render(fmt, "service_requests", "request", await _views(request, uow, issues))

    return await guarded(fmt if fmt in ("json", "xml") else "xml", go)


@router.get("/requests/{name}", summary="GET Service Request (requests/<service_request_id>.<format>)")
async def get_request(name: str, request: Request, uow: UoW) -> Response:
    fmt = name.rpartition(".")[2] if name.rpartition(".")[2] in ("json", "xml") else "xml"

    async def go() -> Response:
        raw, _ = split_format(name)
        _check_jurisdiction(request.query_params)
        try:
            ident = UUID(raw)
        except ValueError:
            raise Open311Error(404, f"service_request_id {raw!r} not found") from None
        issue = (await uow.session.execute(select(Issue).where(Issue.id == ident, *_public()))).scalar()
        if issue is None:
            raise Open311Error(404, f"service_request_id {raw!r} not found")
        return render(fmt, "service_requests", "request", await _views(request, uow, [issue]))

    return await guarded(fmt, go)


@router.get("/tokens/{name}", summary="GET service_request_id from a token (tokens/<token>.<format>)")
async def get_token(name: str, request: Request, uow: UoW) -> Response:
    fmt = name.rpartition(".")[2] if name.rpartition(".")[2] in ("json", "xml") else "xml"

    async def go() -> Response:
        token, _ = split_format(name)
        _check_jurisdiction(request.query_params)
        issue_id = (
            (await uow.session.execute(select(Issue.id).where(Issue.open311_token == token))).scalar()
            if token
            else None
        )
        if issue_id is None:
            raise Open311Error(404, f"token {token!r} not found")
        return render(fmt, "service_requests", "request", [{"service_request_id": str(issue_id), "token": token}])

    return await guarded(fmt, go)


# --- API keys (staff) ---------------------------------------------------------------------------------------

Manager = Annotated[Principal, Depends(catalogue_manager)]


@keys_router.post(
    "/open311-keys",
    response_model=ApiKeyIssued,
    status_code=201,
    summary="Staff: issue an Open311 API key (shown once; only its hash is stored)",
)
async def create_key(body: ApiKeyCreate, uow: UoW, who: Manager) -> ApiKeyIssued:
    prefix = secrets.token_hex(4)
    key = f"ms311_{prefix}_{secrets.token_urlsafe(24).replace('_', '-')}"
    row = ApiKey(name=body.name, prefix=prefix, key_hash=_api_key_hash(key), created_by=who.sub)
    uow.session.add(row)
    await uow.commit()
    return ApiKeyIssued.model_validate(
        {**ApiKeyPublic.model_validate(row, from_attributes=True).model_dump(), "api_key": key}
    )


@keys_router.get("/open311-keys", response_model=Page[ApiKeyPublic], summary="Staff: Open311 API keys")
async def list_keys(
    uow: UoW, who: Manager, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[ApiKeyPublic]:
    query = select(ApiKey)
    if cursor:
        created, ident = decode_cursor(cursor, datetime, UUID)
        query = query.where(
            sa.or_(col(ApiKey.created_at) < created, sa.and_(col(ApiKey.created_at) == created, col(ApiKey.id) < ident))
        )
    rows = list(
        (
            await uow.session.execute(
                query.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc()).limit(limit + 1)
            )
        ).scalars()
    )
    page = page_of(rows, limit, lambda k: encode_cursor(k.created_at, k.id))
    return Page[ApiKeyPublic](
        items=[ApiKeyPublic.model_validate(k, from_attributes=True) for k in page.items], next_cursor=page.next_cursor
    )


@keys_router.delete("/open311-keys/{key_id}", response_model=ApiKeyPublic, summary="Staff: revoke a key")
async def revoke_key(key_id: UUID, uow: UoW, who: Manager) -> ApiKeyPublic:
    row = await uow.session.get(ApiKey, key_id)
    if row is None:
        raise not_found("api_key", key_id)
    row.revoked_at = row.revoked_at or utcnow()
    await uow.commit()
    return ApiKeyPublic.model_validate(row, from_attributes=True)


def refused(path: str, description: str) -> Response:
    """A request the platform refused before any route ran (NUL bytes), in the Open311 error shape."""
    return error("json" if path.endswith(".json") else "xml", 400, description)
