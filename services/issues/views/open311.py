"""``/open311/v2/…``: Open311 GeoReport v2 over the same catalogue and issues (formats, errors and queries in
``services/issues/open311.py``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError

from minsheng.platform.ids import utcnow
from minsheng.platform.inputs import photo_url, text
from minsheng.platform.routes import Cipher
from minsheng.platform.service import UoW
from minsheng.platform.uow import UnitOfWork
from services.issues import config, open311
from services.issues.models import OPEN_STATUSES, AttributeDef, Category, Contact, Issue, IssueCreate
from services.issues.open311 import (
    CHANGESET,
    MAX_RESULTS,
    MAX_SPAN,
    SPEC_URL,
    Open311Error,
    check_jurisdiction,
    error,
    guarded,
    parse_w3,
    render,
    reply_format,
    split_format,
    w3,
)

router = APIRouter(tags=["open311"])
# The path's variable parts, bounded and without NUL bytes: anything else is a 400 in the Open311 error shape
# (foreign_error_formats).
Format = Annotated[str, text(10), Path(description="json or xml")]
Name = Annotated[str, text(100), Path(description="<code, id or token>.<json|xml>")]
# The reporter is "open311:<key name>:<account_id>", a column of 200 characters; key names have up to 100.
ACCOUNT_ID_MAX_LENGTH = 90


def _name(request: Request, cat: Category) -> str:
    lang = (request.query_params.get("locale") or request.headers.get("accept-language") or "zh").lower()
    return cat.name_en if lang.startswith("en") else cat.name_zh


# --- discovery and services ---------------------------------------------------------------------------------


@router.get("/open311/v2/discovery.{fmt}", summary="Service discovery")
async def discovery(fmt: Format, request: Request) -> Response:
    if fmt not in ("json", "xml"):
        return error("xml", 404, "Unknown format: use .json or .xml")
    base = str(request.url).rsplit("/", 1)[0]
    cfg = config.get()
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


@router.get("/open311/v2/services.{fmt}", summary="GET Service List")
async def services(fmt: Format, request: Request, uow: UoW) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        check_jurisdiction(request.query_params)
        cats = await open311.active_services(uow)
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

    return await guarded(reply_format(fmt), go)


@router.get("/open311/v2/services/{name}", summary="GET Service Definition (services/<service_code>.<format>)")
async def service_definition(name: Name, request: Request, uow: UoW) -> Response:
    fmt = reply_format(name.rpartition(".")[2])

    async def go() -> Response:
        code, _ = split_format(name)
        check_jurisdiction(request.query_params)
        cat = await open311.active_service(uow, code, not_handled_status=404)
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


@router.post("/open311/v2/requests.{fmt}", summary="POST Service Request (form-encoded, api_key required)")
async def create_request(fmt: Format, request: Request, uow: UoW, cipher: Cipher) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        form = await request.form()
        check_jurisdiction(form)
        key = await open311.check_api_key(
            uow, str(form.get("api_key") or request.query_params.get("api_key") or "") or None
        )
        code = str(form.get("service_code") or "")
        if not code:
            raise Open311Error(400, "service_code was not provided")
        cat = await open311.active_service(uow, code, not_handled_status=400)
        lat, lng = _float(form, "lat"), _float(form, "long")
        address = str(form.get("address_string") or "") or None
        address_id = str(form.get("address_id") or "") or None
        if (lat is None) != (lng is None):
            raise Open311Error(400, "lat and long must be sent together")
        if lat is None and not address and not address_id:
            raise Open311Error(400, "A location is required: lat & long, address_string or address_id")
        account_id = str(form.get("account_id") or "") or None
        if account_id is not None and len(account_id) > ACCOUNT_ID_MAX_LENGTH:
            raise Open311Error(400, f"account_id: at most {ACCOUNT_ID_MAX_LENGTH} characters")
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
        issue = await open311.create_request(uow, key, account_id, body, cipher)
        await uow.commit()
        return render(
            fmt,
            "service_requests",
            "request",
            [{"service_request_id": str(issue.id), "service_notice": cat.service_notice, "account_id": account_id}],
        )

    return await guarded(reply_format(fmt), go)


async def _views(request: Request, uow: UnitOfWork, issues: list[Issue]) -> list[dict[str, Any]]:
    cats, depts = await open311.related(uow, issues)
    origin = f"{request.url.scheme}://{request.url.netloc}"
    out = []
    for i in issues:
        cat = cats.get(i.category)
        dept = depts.get(open311.responsible(i, cats) or "")
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


@router.get("/open311/v2/requests.{fmt}", summary="GET Service Requests (90-day window, at most 1,000; page/page_size)")
async def list_requests(fmt: Format, request: Request, uow: UoW) -> Response:
    async def go() -> Response:
        if fmt not in ("json", "xml"):
            raise Open311Error(404, "Unknown format: use .json or .xml")
        q = request.query_params
        check_jurisdiction(q)
        ids_raw = q.get("service_request_id")
        if ids_raw:  # overrides every other argument
            ids: list[UUID] = []
            for raw in ids_raw.split(","):
                try:
                    ids.append(UUID(raw.strip()))
                except ValueError:
                    continue
            issues = await open311.find_requests(uow, ids=ids)
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
            codes = [c.strip() for c in (q.get("service_code") or "").split(",") if c.strip()]
            statuses = {s.strip() for s in (q.get("status") or "").split(",") if s.strip()}
            if statuses - {"open", "closed"}:
                raise Open311Error(400, "status must be open and/or closed")
            try:
                page = int(q.get("page") or 1)
                size = int(q.get("page_size") or MAX_RESULTS)
            except ValueError:
                raise Open311Error(400, "page and page_size must be whole numbers") from None
            if page < 1 or not 1 <= size <= MAX_RESULTS:
                raise Open311Error(400, f"page must be ≥ 1 and page_size between 1 and {MAX_RESULTS}")
            issues = await open311.find_requests(
                uow, start=start, end=end, codes=codes, statuses=statuses, page=page, size=size
            )
        return render(fmt, "service_requests", "request", await _views(request, uow, issues))

    return await guarded(reply_format(fmt), go)


@router.get("/open311/v2/requests/{name}", summary="GET Service Request (requests/<service_request_id>.<format>)")
async def get_request(name: Name, request: Request, uow: UoW) -> Response:
    fmt = reply_format(name.rpartition(".")[2])

    async def go() -> Response:
        raw, _ = split_format(name)
        check_jurisdiction(request.query_params)
        try:
            ident = UUID(raw)
        except ValueError:
            raise Open311Error(404, f"service_request_id {raw!r} not found") from None
        issue = await open311.public_request(uow, ident)
        if issue is None:
            raise Open311Error(404, f"service_request_id {raw!r} not found")
        return render(fmt, "service_requests", "request", await _views(request, uow, [issue]))

    return await guarded(fmt, go)


@router.get("/open311/v2/tokens/{name}", summary="GET service_request_id from a token (tokens/<token>.<format>)")
async def get_token(name: Name, request: Request, uow: UoW) -> Response:
    fmt = reply_format(name.rpartition(".")[2])

    async def go() -> Response:
        token, _ = split_format(name)
        check_jurisdiction(request.query_params)
        issue_id = await open311.request_of_token(uow, token)
        if issue_id is None:
            raise Open311Error(404, f"token {token!r} not found")
        return render(fmt, "service_requests", "request", [{"service_request_id": str(issue_id), "token": token}])

    return await guarded(fmt, go)
