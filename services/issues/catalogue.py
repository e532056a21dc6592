"""The service catalogue ("办事说明书"): departments, categories with deadlines and extra questions, the
matters not handled here (with where to go instead), communities, and staff reply templates."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select

from minsheng.platform.coords import distance_m
from minsheng.platform.errors import Problem, UniqueRule, conflict, invalid, not_found
from minsheng.platform.i18n import N_, Localized, _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
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
    Department,
    DepartmentCreate,
    Issue,
    NotHandledCreate,
    NotHandledMatter,
    ReplyTemplate,
    ReplyTemplateCreate,
)

CATEGORY_EXISTS = UniqueRule(Category, ["code"], "category_exists", "A category with this code already exists.")
DEPARTMENT_EXISTS = UniqueRule(Department, ["code"], "department_exists", "A department with this code already exists.")
MATTER_EXISTS = UniqueRule(NotHandledMatter, ["code"], "matter_exists", "A matter with this code already exists.")
TEMPLATE_EXISTS = UniqueRule(
    ReplyTemplate, ["code"], "template_exists", "A reply template with this code already exists."
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
    raise invalid(
        "unknown_category",
        "Unknown category",
        _t("No active category {code!r}; see GET /issues/catalogue/categories.", code=code),
        field="category",
        message="unknown category",
    )


def _attr_error(code: str, message: str) -> Problem:
    return invalid(
        "invalid_attribute",
        "An answer to the category's questions is not valid",
        _t("{code}: {message}", code=code, message=message),
        field=f"attributes.{code}",
        message=message,
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
            raise invalid(
                "unknown_community",
                "Unknown community",
                _t("No community {code!r}; see GET /issues/catalogue/communities.", code=code),
                field="community",
                message="unknown community",
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
        raise invalid(
            "unknown_template",
            "Unknown reply template",
            _t("No active reply template {code!r}.", code=code),
            field="template",
            message="unknown template",
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


# --- managing the catalogue (the routes are in views/catalogue.py and views/reply_templates.py) -------------


async def page_by_code(uow: UnitOfWork, model: type[T], page: PageRequest, *where: Any) -> Page[T]:
    by_code = Keyset((model.code,), kinds=(str,), descending=False)  # type: ignore[attr-defined]
    return await keyset_page(uow.session, select(model).where(*where), by_code, page)


async def existing(uow: UnitOfWork, model: type[T], kind: str, code: Any) -> T:
    """The entry with this key, or a 404 naming its kind (a msgid: pass it as ``N_("…")``)."""
    found = await uow.session.get(model, code)
    if found is None:
        raise not_found(kind, code)
    return found


def apply(obj: SQLModel, update: SQLModel) -> None:
    for name, value in update.model_dump(exclude_unset=True).items():
        if name == "attributes" and value is not None:
            value = [AttributeDef.model_validate(a).model_dump(mode="json") for a in value]
        setattr(obj, name, value)


async def update(uow: UnitOfWork, model: type[T], kind: str, code: str, body: SQLModel) -> T:
    found = await existing(uow, model, kind, code)
    apply(found, body)
    return found


async def category_public(uow: UnitOfWork, cats: list[Category]) -> list[CategoryPublic]:
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
        raise invalid(
            "unknown_department",
            "Unknown department",
            _t("No department {code!r}.", code=code),
            field="department",
            message="unknown department",
        )


async def list_categories(
    uow: UnitOfWork, page: PageRequest, group: str | None, include_inactive: bool
) -> Page[Category]:
    where: list[Any] = [] if include_inactive else [col(Category.active).is_(True)]
    if group:
        where.append(Category.group == group)
    return await page_by_code(uow, Category, page, *where)


async def create_category(uow: UnitOfWork, body: CategoryCreate) -> Category:
    if await uow.session.get(Category, body.code) is not None:
        raise CATEGORY_EXISTS.problem(_t("Category {code!r} already exists; PATCH it instead.", code=body.code))
    if await uow.session.get(NotHandledMatter, body.code) is not None:
        raise conflict("code_in_use", _t("{code!r} is a matter not handled here.", code=body.code))
    await _check_department(uow, body.department)
    cat = Category.model_validate({**body.model_dump(mode="json")})
    uow.session.add(cat)
    return cat


async def update_category(uow: UnitOfWork, code: str, body: CategoryUpdate) -> Category:
    cat = await existing(uow, Category, N_("category"), code)
    if body.department is not None:
        await _check_department(uow, body.department)
    apply(cat, body)
    cat.updated_at = utcnow()
    return cat


async def create_department(uow: UnitOfWork, body: DepartmentCreate) -> Department:
    if await uow.session.get(Department, body.code) is not None:
        raise DEPARTMENT_EXISTS.problem(_t("Department {code!r} already exists.", code=body.code))
    dept = Department.model_validate(body.model_dump())
    uow.session.add(dept)
    return dept


async def list_not_handled(uow: UnitOfWork, page: PageRequest, kind: str | None) -> Page[NotHandledMatter]:
    where: list[Any] = [col(NotHandledMatter.active).is_(True)]
    if kind:
        where.append(NotHandledMatter.kind == kind)
    return await page_by_code(uow, NotHandledMatter, page, *where)


async def create_not_handled(uow: UnitOfWork, body: NotHandledCreate) -> NotHandledMatter:
    if await uow.session.get(NotHandledMatter, body.code) is not None:
        raise MATTER_EXISTS.problem(_t("Matter {code!r} already exists.", code=body.code))
    if await uow.session.get(Category, body.code) is not None:
        raise conflict("code_in_use", _t("{code!r} is a category.", code=body.code))
    matter = NotHandledMatter.model_validate(body.model_dump())
    uow.session.add(matter)
    return matter


async def search(uow: UnitOfWork, q: str) -> tuple[list[Category], list[NotHandledMatter]]:
    """Active categories and matters not handled here whose names or keywords contain ``q`` (20 of each)."""
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
    return cats[:20], matters[:20]


async def put_community(uow: UnitOfWork, code: str, body: CommunityCreate) -> Community:
    if body.code != code:
        raise Problem(422, "code_mismatch", "The body's code differs from the URL's", _t("Use {code!r}.", code=code))
    community = await uow.session.get(Community, code)
    if community is None:
        community = Community.model_validate(body.model_dump())
        uow.session.add(community)
    else:
        apply(community, body)
    return community


async def list_templates(uow: UnitOfWork, page: PageRequest) -> Page[ReplyTemplate]:
    return await page_by_code(uow, ReplyTemplate, page, col(ReplyTemplate.active).is_(True))


async def create_template(uow: UnitOfWork, body: ReplyTemplateCreate) -> ReplyTemplate:
    if await uow.session.get(ReplyTemplate, body.code) is not None:
        raise TEMPLATE_EXISTS.problem(_t("Reply template {code!r} already exists.", code=body.code))
    template = ReplyTemplate.model_validate(body.model_dump())
    uow.session.add(template)
    return template
