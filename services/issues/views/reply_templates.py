"""``/reply-templates``: the staff's reply templates (kept with the catalogue, used by the workflow)."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.i18n import N_
from minsheng.platform.pagination import Page
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.issues import catalogue
from services.issues.models import (
    CatalogueCode,
    ReplyTemplate,
    ReplyTemplateCreate,
    ReplyTemplatePublic,
    ReplyTemplateUpdate,
)
from services.issues.views.deps import CataloguePageQuery, Staff

router = APIRouter(tags=["catalogue", "workflow"])


@router.get("/reply-templates")
async def list_templates(uow: UoW, who: Staff, page: CataloguePageQuery) -> Page[ReplyTemplatePublic]:
    return (await catalogue.list_templates(uow, page)).map(from_row(ReplyTemplatePublic))


@router.post("/reply-templates", status_code=201)
async def create_template(body: ReplyTemplateCreate, uow: UoW, who: Staff) -> ReplyTemplatePublic:
    template = await catalogue.create_template(uow, body)
    await uow.commit()
    return ReplyTemplatePublic.model_validate(template, from_attributes=True)


@router.patch("/reply-templates/{code}")
async def update_template(code: CatalogueCode, body: ReplyTemplateUpdate, uow: UoW, who: Staff) -> ReplyTemplatePublic:
    template = await catalogue.update(uow, ReplyTemplate, N_("reply_template"), code, body)
    await uow.commit()
    return ReplyTemplatePublic.model_validate(template, from_attributes=True)
