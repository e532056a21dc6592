"""The service catalogue ("办事说明书"): departments, categories with deadlines and extra questions, the
matters not handled here (with where to go instead), communities, and staff reply templates."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from sqlmodel import SQLModel, col, select

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.coords import distance_m
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import Localized, _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.service import UoW
from minsheng.platform.uow import UnitOfWork
from services.issues.models import (
    AttributeDef,
    AttributeType,
    Category,
    CategoryCreate,
    CategoryPublic,
    CategoryUpdate,
    Community,
    CommunityCreate,
    CommunityPublic,
    Department,
    DepartmentCreate,
    DepartmentPublic,
    DepartmentUpdate,
    Issue,
    NotHandledCreate,
    NotHandledMatter,
    NotHandledPublic,
    NotHandledUpdate,
    ReplyTemplate,
    ReplyTemplateCreate,
    ReplyTemplatePublic,
    ReplyTemplateUpdate,
)

DEFAULT_FIRST_RESPONSE_MINUTES = 24 * 60  # next day
DEFAULT_RESOLUTION_HOURS = 7 * 24  # within a week
COMMUNITY_RADIUS_M = 5_000.0

T = TypeVar("T", bound=SQLModel)


# --- used by intake -----------------------------------------------------------------------------------------

# Intake reads the catalogue on every report: each replica keeps it for a few seconds (writes through this
# replica clear it at once; other replicas see a change within CACHE_SECONDS).
CACHE_SECONDS = 30.0
_categories: dict[tuple[str, str], tuple[float, Category | None]] = {}
_communities: dict[str, tuple[float, list[tuple[str, float | None, float | None]]]] = {}


def invalidate_cache() -> None:
    _categories.clear()
    _communities.clear()


async def cached_category(uow: UnitOfWork, code: str) -> Category | None:
    key = (str(uow.db.url), code)
    hit = _categories.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    cat = await uow.session.get(Category, code)
    if cat is not None:
        uow.session.expunge(cat)  # a read-only snapshot, shared between requests
    if len(_categories) > 5000:
        _categories.clear()
    _categories[key] = (time.monotonic() + CACHE_SECONDS, cat)
    return cat


async def known_communities(uow: UnitOfWork) -> list[tuple[str, float | None, float | None]]:
    key = str(uow.db.url)
    hit = _communities.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    rows = await uow.session.execute(select(Community.code, Community.latitude, Community.longitude))
    found = [(code, lat, lng) for code, lat, lng in rows.tuples()]
    _communities[key] = (time.monotonic() + CACHE_SECONDS, found)
    return found


async def category_or_default(uow: UnitOfWork, code: str, *, urgent: bool = False) -> Category:
    """The catalogue entry, or default deadlines for a category another service uses that the catalogue lacks
    (an event is never dropped for want of a catalogue entry)."""
    cat = await cached_category(uow, code)
    if cat is not None:
        return cat
    return Category(
        code=code,
        name_zh=code,
        name_en=code,
        department="",
        urgent=urgent,
        first_response_minutes=DEFAULT_FIRST_RESPONSE_MINUTES,
        resolution_hours=DEFAULT_RESOLUTION_HOURS,
    )


async def require_category(uow: UnitOfWork, code: str) -> Category:
    """The active category, or a helpful answer: a matter not handled here says where to go instead."""
    cat = await cached_category(uow, code)
    if cat is not None and cat.active:
        return cat
    matter = await uow.session.get(NotHandledMatter, code)
    if matter is not None and matter.active:
        raise Problem(
            422,
            "not_handled_here",
            _t("{matter} is not handled here", matter=Localized(zh_CN=matter.title_zh, en=matter.title_en)),
            _t("Go to: {place}.", place=Localized(zh_CN=matter.go_to_zh, en=matter.go_to_en)),
            matter=code,
            go_to_zh=matter.go_to_zh,
            go_to_en=matter.go_to_en,
            guidance=matter.guidance,
        )
    raise Problem(
        422,
        "unknown_category",
        "Unknown category",
        _t("No active category {code!r}; see GET /issues/catalogue/categories.", code=code),
        errors=[{"field": "category", "message": "unknown category", "type": "value_error"}],
    )


def _attr_error(code: str, message: str) -> Problem:
    return Problem(
        422,
        "invalid_attribute",
        "An answer to the category's questions is not valid",
        _t("{code}: {message}", code=code, message=message),
        errors=[{"field": f"attributes.{code}", "message": message, "type": "value_error"}],
    )


def validate_attributes(cat: Category, answers: dict[str, Any]) -> dict[str, Any]:
    """Check answers against the category's typed questions; returns them normalised."""
    defs = {d.code: d for d in (AttributeDef.model_validate(a) for a in cat.attributes) if d.variable}
    unknown = sorted(set(answers) - set(defs))
    if unknown:
        raise _attr_error(unknown[0], f"not a question of category {cat.code}")
    out: dict[str, Any] = {}
    for code, d in defs.items():
        value = answers.get(code)
        if value is None or value == "" or value == []:
            if d.required:
                raise _attr_error(code, "required")
            continue
        keys = {v.key for v in d.values}
        if d.datatype == AttributeType.number:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise _attr_error(code, "must be a number") from None
            if not math.isfinite(number):
                raise _attr_error(code, "must be a finite number")
            out[code] = number
        elif d.datatype == AttributeType.datetime:
            try:
                out[code] = datetime.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise _attr_error(code, "must be an ISO 8601 date/time") from None
        elif d.datatype == AttributeType.singlevaluelist:
            if str(value) not in keys:
                raise _attr_error(code, f"must be one of {sorted(keys)}")
            out[code] = str(value)
        elif d.datatype == AttributeType.multivaluelist:
            values = [str(v) for v in (value if isinstance(value, list) else [value])]
            if not set(values) <= keys:
                raise _attr_error(code, f"values must be among {sorted(keys)}")
            out[code] = values
        else:
            text = str(value)
            if len(text) > 2000 or (d.datatype == AttributeType.string and "\n" in text):
                raise _attr_error(code, "too long" if len(text) > 2000 else "must be one line")
            out[code] = text
    return out


async def resolve_community(
    uow: UnitOfWork, code: str | None, lat: float | None, lng: float | None, *, strict: bool = True
) -> str | None:
    """Check a community code against the catalogue (when it lists communities), or infer the nearest one
    from coordinates."""
    known = await known_communities(uow)
    if code is not None:
        if strict and known and code not in {c for c, _, _ in known}:
            raise Problem(
                422,
                "unknown_community",
                "Unknown community",
                _t("No community {code!r}; see GET /issues/catalogue/communities.", code=code),
                errors=[{"field": "community", "message": "unknown community", "type": "value_error"}],
            )
        return code
    if lat is None or lng is None:
        return None
    best: tuple[float, str] | None = None
    for c, c_lat, c_lng in known:
        if c_lat is None or c_lng is None:
            continue
        d = distance_m(lat, lng, c_lat, c_lng)
        if d <= COMMUNITY_RADIUS_M and (best is None or d < best[0]):
            best = (d, c)
    return best[1] if best else None


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


async def render_template(uow: UnitOfWork, code: str, issue: Issue) -> str:
    template = await uow.session.get(ReplyTemplate, code)
    if template is None or not template.active:
        raise Problem(
            422,
            "unknown_template",
            "Unknown reply template",
            _t("No active reply template {code!r}.", code=code),
            errors=[{"field": "template", "message": "unknown template", "type": "value_error"}],
        )
    cat = await uow.session.get(Category, issue.category)
    values = _Blank(
        title=issue.title,
        category=cat.name_zh if cat else issue.category,
        department=", ".join(issue.departments),
        reporter_count=issue.reporter_count,
        due=issue.resolution_due_at.strftime("%Y-%m-%d %H:%M UTC") if issue.resolution_due_at else "",
    )
    return template.body.format_map(values)


# --- views --------------------------------------------------------------------------------------------------

router = APIRouter(tags=["catalogue"])
Limit = Annotated[int, Query(ge=1, le=500)]


async def catalogue_manager(who: Principal = Depends(current_principal)) -> Principal:
    """The catalogue is county-wide: admins, or staff with the whole district (``*``) or ``catalogue:manage``."""
    if Role.admin in who.roles or (who.has(Role.staff) and ("*" in who.scopes or "catalogue:manage" in who.scopes)):
        return who
    raise Problem(
        403,
        "forbidden_role",
        "Not allowed for your role",
        "Managing the catalogue needs admin, or staff with scope * or catalogue:manage.",
    )


Manager = Annotated[Principal, Depends(catalogue_manager)]
Staff = Annotated[Principal, Depends(require(Role.staff))]


async def _page(uow: UnitOfWork, model: type[T], limit: int, cursor: str | None, *where: Any) -> Page[T]:
    key = model.code  # type: ignore[attr-defined]
    query = select(model).where(*where)
    if cursor:
        (after,) = decode_cursor(cursor, str)
        query = query.where(key > after)
    rows = list((await uow.session.execute(query.order_by(key).limit(limit + 1))).scalars())
    return page_of(rows, limit, lambda r: encode_cursor(r.code))


def _apply(obj: SQLModel, update: SQLModel) -> None:
    for name, value in update.model_dump(exclude_unset=True).items():
        if name == "attributes" and value is not None:
            value = [AttributeDef.model_validate(a).model_dump(mode="json") for a in value]
        setattr(obj, name, value)


async def _category_public(uow: UnitOfWork, cats: list[Category]) -> list[CategoryPublic]:
    codes = {c.department for c in cats}
    depts = {
        d.code: d
        for d in (await uow.session.execute(select(Department).where(col(Department.code).in_(codes)))).scalars()
    }
    out = []
    for c in cats:
        d = depts.get(c.department)
        out.append(
            CategoryPublic.model_validate(
                {
                    **c.model_dump(),
                    "attributes": [AttributeDef.model_validate(a) for a in c.attributes],
                    "department_name_zh": d.name_zh if d else None,
                    "department_name_en": d.name_en if d else None,
                }
            )
        )
    return out


async def _check_department(uow: UnitOfWork, code: str) -> None:
    if await uow.session.get(Department, code) is None:
        raise Problem(
            422,
            "unknown_department",
            "Unknown department",
            _t("No department {code!r}.", code=code),
            errors=[{"field": "department", "message": "unknown department", "type": "value_error"}],
        )


@router.get(
    "/catalogue/categories",
    response_model=Page[CategoryPublic],
    summary="What you can report, who handles it, how fast, what to bring (public)",
)
async def list_categories(
    uow: UoW,
    response: Response,
    limit: Limit = 200,
    cursor: str | None = None,
    group: str | None = None,
    include_inactive: bool = False,
) -> Page[CategoryPublic]:
    where: list[Any] = [] if include_inactive else [col(Category.active).is_(True)]
    if group:
        where.append(Category.group == group)
    page = await _page(uow, Category, limit, cursor, *where)
    response.headers["Cache-Control"] = "public, max-age=60"
    return Page[CategoryPublic](items=await _category_public(uow, page.items), next_cursor=page.next_cursor)


@router.get("/catalogue/categories/{code}", response_model=CategoryPublic)
async def get_category(code: str, uow: UoW) -> CategoryPublic:
    cat = await uow.session.get(Category, code)
    if cat is None:
        raise not_found("category", code)
    return (await _category_public(uow, [cat]))[0]


@router.post("/catalogue/categories", response_model=CategoryPublic, status_code=201)
async def create_category(body: CategoryCreate, uow: UoW, who: Manager) -> CategoryPublic:
    if await uow.session.get(Category, body.code) is not None:
        raise conflict("category_exists", _t("Category {code!r} already exists; PATCH it instead.", code=body.code))
    if await uow.session.get(NotHandledMatter, body.code) is not None:
        raise conflict("code_in_use", _t("{code!r} is a matter not handled here.", code=body.code))
    await _check_department(uow, body.department)
    cat = Category.model_validate({**body.model_dump(mode="json")})
    uow.session.add(cat)
    await uow.commit()
    invalidate_cache()
    return (await _category_public(uow, [cat]))[0]


@router.patch("/catalogue/categories/{code}", response_model=CategoryPublic)
async def update_category(code: str, body: CategoryUpdate, uow: UoW, who: Manager) -> CategoryPublic:
    cat = await uow.session.get(Category, code)
    if cat is None:
        raise not_found("category", code)
    if body.department is not None:
        await _check_department(uow, body.department)
    _apply(cat, body)
    cat.updated_at = utcnow()
    await uow.commit()
    invalidate_cache()
    return (await _category_public(uow, [cat]))[0]


@router.get("/catalogue/departments", response_model=Page[DepartmentPublic], summary="Who does what (public)")
async def list_departments(uow: UoW, limit: Limit = 200, cursor: str | None = None) -> Page[DepartmentPublic]:
    page = await _page(uow, Department, limit, cursor)
    return Page[DepartmentPublic](
        items=[DepartmentPublic.model_validate(d, from_attributes=True) for d in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/catalogue/departments", response_model=DepartmentPublic, status_code=201)
async def create_department(body: DepartmentCreate, uow: UoW, who: Manager) -> DepartmentPublic:
    if await uow.session.get(Department, body.code) is not None:
        raise conflict("department_exists", _t("Department {code!r} already exists.", code=body.code))
    dept = Department.model_validate(body.model_dump())
    uow.session.add(dept)
    await uow.commit()
    return DepartmentPublic.model_validate(dept, from_attributes=True)


@router.patch("/catalogue/departments/{code}", response_model=DepartmentPublic)
async def update_department(code: str, body: DepartmentUpdate, uow: UoW, who: Manager) -> DepartmentPublic:
    dept = await uow.session.get(Department, code)
    if dept is None:
        raise not_found("department", code)
    _apply(dept, body)
    await uow.commit()
    return DepartmentPublic.model_validate(dept, from_attributes=True)


@router.get(
    "/catalogue/not-handled",
    response_model=Page[NotHandledPublic],
    summary="Matters not handled here (e.g. certificates a community must not issue) and where to go",
)
async def list_not_handled(
    uow: UoW, limit: Limit = 200, cursor: str | None = None, kind: str | None = None
) -> Page[NotHandledPublic]:
    where: list[Any] = [col(NotHandledMatter.active).is_(True)]
    if kind:
        where.append(NotHandledMatter.kind == kind)
    page = await _page(uow, NotHandledMatter, limit, cursor, *where)
    return Page[NotHandledPublic](
        items=[NotHandledPublic.model_validate(m, from_attributes=True) for m in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/catalogue/not-handled/{code}", response_model=NotHandledPublic)
async def get_not_handled(code: str, uow: UoW) -> NotHandledPublic:
    matter = await uow.session.get(NotHandledMatter, code)
    if matter is None:
        raise not_found("not_handled_matter", code)
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.post("/catalogue/not-handled", response_model=NotHandledPublic, status_code=201)
async def create_not_handled(body: NotHandledCreate, uow: UoW, who: Manager) -> NotHandledPublic:
    if await uow.session.get(NotHandledMatter, body.code) is not None:
        raise conflict("matter_exists", _t("Matter {code!r} already exists.", code=body.code))
    if await uow.session.get(Category, body.code) is not None:
        raise conflict("code_in_use", _t("{code!r} is a category.", code=body.code))
    matter = NotHandledMatter.model_validate(body.model_dump())
    uow.session.add(matter)
    await uow.commit()
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.patch("/catalogue/not-handled/{code}", response_model=NotHandledPublic)
async def update_not_handled(code: str, body: NotHandledUpdate, uow: UoW, who: Manager) -> NotHandledPublic:
    matter = await uow.session.get(NotHandledMatter, code)
    if matter is None:
        raise not_found("not_handled_matter", code)
    _apply(matter, body)
    await uow.commit()
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.get("/catalogue/search", summary="Find the right category — or learn where to go instead (public)")
async def search(uow: UoW, q: Annotated[str, Query(min_length=1, max_length=50)]) -> dict[str, Any]:
    needle = q.strip().lower()

    def hit(*fields: str | None) -> bool:
        return any(needle in (f or "").lower() for f in fields)

    cats = [
        c
        for c in (await uow.session.execute(select(Category).where(col(Category.active).is_(True)))).scalars()
        if hit(c.code, c.name_zh, c.name_en, c.keywords, c.description)
    ]
    matters = [
        m
        for m in (
            await uow.session.execute(select(NotHandledMatter).where(col(NotHandledMatter.active).is_(True)))
        ).scalars()
        if hit(m.code, m.title_zh, m.title_en, m.keywords)
    ]
    return {
        "categories": await _category_public(uow, cats[:20]),
        "not_handled": [NotHandledPublic.model_validate(m, from_attributes=True) for m in matters[:20]],
    }


@router.get("/catalogue/communities", response_model=Page[CommunityPublic], summary="Community codes (public)")
async def list_communities(uow: UoW, limit: Limit = 200, cursor: str | None = None) -> Page[CommunityPublic]:
    page = await _page(uow, Community, limit, cursor)
    return Page[CommunityPublic](
        items=[CommunityPublic.model_validate(c, from_attributes=True) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.put("/catalogue/communities/{code}", response_model=CommunityPublic)
async def put_community(code: str, body: CommunityCreate, uow: UoW, who: Manager) -> CommunityPublic:
    if body.code != code:
        raise Problem(422, "code_mismatch", "The body's code differs from the URL's", _t("Use {code!r}.", code=code))
    community = await uow.session.get(Community, code)
    if community is None:
        community = Community.model_validate(body.model_dump())
        uow.session.add(community)
    else:
        _apply(community, body)
    await uow.commit()
    invalidate_cache()
    return CommunityPublic.model_validate(community, from_attributes=True)


@router.get("/reply-templates", response_model=Page[ReplyTemplatePublic], tags=["workflow"])
async def list_templates(
    uow: UoW, who: Staff, limit: Limit = 200, cursor: str | None = None
) -> Page[ReplyTemplatePublic]:
    page = await _page(uow, ReplyTemplate, limit, cursor, col(ReplyTemplate.active).is_(True))
    return Page[ReplyTemplatePublic](
        items=[ReplyTemplatePublic.model_validate(t, from_attributes=True) for t in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/reply-templates", response_model=ReplyTemplatePublic, status_code=201, tags=["workflow"])
async def create_template(body: ReplyTemplateCreate, uow: UoW, who: Staff) -> ReplyTemplatePublic:
    if await uow.session.get(ReplyTemplate, body.code) is not None:
        raise conflict("template_exists", _t("Reply template {code!r} already exists.", code=body.code))
    template = ReplyTemplate.model_validate(body.model_dump())
    uow.session.add(template)
    await uow.commit()
    return ReplyTemplatePublic.model_validate(template, from_attributes=True)


@router.patch("/reply-templates/{code}", response_model=ReplyTemplatePublic, tags=["workflow"])
async def update_template(code: str, body: ReplyTemplateUpdate, uow: UoW, who: Staff) -> ReplyTemplatePublic:
    template = await uow.session.get(ReplyTemplate, code)
    if template is None:
        raise not_found("reply_template", code)
    _apply(template, body)
    await uow.commit()
    return ReplyTemplatePublic.model_validate(template, from_attributes=True)
