"""``/catalogue/…``: the service catalogue ("办事说明书") — categories, departments, matters not handled here,
search and communities. Reading is public; changing it needs a catalogue manager."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from minsheng.platform.i18n import N_
from minsheng.platform.inputs import text
from minsheng.platform.pagination import Page
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.issues import catalogue
from services.issues.models import (
    CatalogueCode,
    CatalogueSearchResult,
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
    NotHandledCreate,
    NotHandledMatter,
    NotHandledPublic,
    NotHandledUpdate,
    PlaceCode,
)
from services.issues.views.deps import CataloguePageQuery, Manager

router = APIRouter(tags=["catalogue"])


@router.get("/catalogue/categories", summary="What you can report, who handles it, how fast, what to bring (public)")
async def list_categories(
    uow: UoW,
    response: Response,
    page: CataloguePageQuery,
    group: CatalogueCode | None = None,
    include_inactive: bool = False,
) -> Page[CategoryPublic]:
    categories = await catalogue.list_categories(uow, page, group, include_inactive)
    response.headers["Cache-Control"] = "public, max-age=60"
    return categories.with_items(await catalogue.category_public(uow, categories.items))


@router.get("/catalogue/categories/{code}")
async def get_category(code: CatalogueCode, uow: UoW) -> CategoryPublic:
    cat = await catalogue.existing(uow, Category, N_("category"), code)
    return (await catalogue.category_public(uow, [cat]))[0]


@router.post("/catalogue/categories", status_code=201)
async def create_category(body: CategoryCreate, uow: UoW, who: Manager) -> CategoryPublic:
    cat = await catalogue.create_category(uow, body)
    await uow.commit()
    catalogue.invalidate_cache()
    return (await catalogue.category_public(uow, [cat]))[0]


@router.patch("/catalogue/categories/{code}")
async def update_category(code: CatalogueCode, body: CategoryUpdate, uow: UoW, who: Manager) -> CategoryPublic:
    cat = await catalogue.update_category(uow, code, body)
    await uow.commit()
    catalogue.invalidate_cache()
    return (await catalogue.category_public(uow, [cat]))[0]


@router.get("/catalogue/departments", summary="Who does what (public)")
async def list_departments(uow: UoW, page: CataloguePageQuery) -> Page[DepartmentPublic]:
    return (await catalogue.page_by_code(uow, Department, page)).map(from_row(DepartmentPublic))


@router.post("/catalogue/departments", status_code=201)
async def create_department(body: DepartmentCreate, uow: UoW, who: Manager) -> DepartmentPublic:
    dept = await catalogue.create_department(uow, body)
    await uow.commit()
    return DepartmentPublic.model_validate(dept, from_attributes=True)


@router.patch("/catalogue/departments/{code}")
async def update_department(code: CatalogueCode, body: DepartmentUpdate, uow: UoW, who: Manager) -> DepartmentPublic:
    dept = await catalogue.update(uow, Department, N_("department"), code, body)
    await uow.commit()
    return DepartmentPublic.model_validate(dept, from_attributes=True)


@router.get(
    "/catalogue/not-handled",
    summary="Matters not handled here (e.g. certificates a community must not issue) and where to go",
)
async def list_not_handled(
    uow: UoW, page: CataloguePageQuery, kind: Annotated[str | None, text(20)] = None
) -> Page[NotHandledPublic]:
    return (await catalogue.list_not_handled(uow, page, kind)).map(from_row(NotHandledPublic))


@router.get("/catalogue/not-handled/{code}")
async def get_not_handled(code: CatalogueCode, uow: UoW) -> NotHandledPublic:
    matter = await catalogue.existing(uow, NotHandledMatter, N_("not_handled_matter"), code)
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.post("/catalogue/not-handled", status_code=201)
async def create_not_handled(body: NotHandledCreate, uow: UoW, who: Manager) -> NotHandledPublic:
    matter = await catalogue.create_not_handled(uow, body)
    await uow.commit()
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.patch("/catalogue/not-handled/{code}")
async def update_not_handled(code: CatalogueCode, body: NotHandledUpdate, uow: UoW, who: Manager) -> NotHandledPublic:
    matter = await catalogue.update(uow, NotHandledMatter, N_("not_handled_matter"), code, body)
    await uow.commit()
    return NotHandledPublic.model_validate(matter, from_attributes=True)


@router.get("/catalogue/search", summary="Find the right category — or learn where to go instead (public)")
async def search(uow: UoW, q: Annotated[str, text(50, min_length=1)]) -> CatalogueSearchResult:
    cats, matters = await catalogue.search(uow, q)
    return CatalogueSearchResult(
        categories=await catalogue.category_public(uow, cats),
        not_handled=[NotHandledPublic.model_validate(m, from_attributes=True) for m in matters],
    )


@router.get("/catalogue/communities", summary="Community codes (public)")
async def list_communities(uow: UoW, page: CataloguePageQuery) -> Page[CommunityPublic]:
    return (await catalogue.page_by_code(uow, Community, page)).map(from_row(CommunityPublic))


@router.put("/catalogue/communities/{code}")
async def put_community(code: PlaceCode, body: CommunityCreate, uow: UoW, who: Manager) -> CommunityPublic:
    community = await catalogue.put_community(uow, code, body)
    await uow.commit()
    catalogue.invalidate_cache()
    return CommunityPublic.model_validate(community, from_attributes=True)
