"""Routes under ``/canteen/subsidy-rules``: versioned subsidy rules (county staff)."""

from __future__ import annotations

from fastapi import APIRouter

from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t
from minsheng.platform.inputs import Day
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.routes import from_row
from minsheng.platform.service import UoW
from services.canteen import subsidy
from services.canteen.models import (
    SlugText,
    SubsidyRuleCreate,
    SubsidyRulePublic,
    SubsidyRuleRetire,
    SubsidyRuleVersionCreate,
)
from services.canteen.views.deps import Caller, Staff, commit, county_only

router = APIRouter(tags=["subsidy"])
_rule_out = from_row(SubsidyRulePublic)


@router.get("/subsidy-rules", summary="Rule versions; `on` = those in force on a date")
async def list_rules(
    *,
    uow: UoW,
    who: Caller,
    on: Day | None = None,
    key: SlugText | None = None,
    page: PageQuery,
) -> Page[SubsidyRulePublic]:
    return (await subsidy.list_rules(uow, page, on=on, key=key)).map(_rule_out)


@router.post("/subsidy-rules", status_code=201, summary="A new rule (version 1) from a date: county staff only")
async def create_rule(body: SubsidyRuleCreate, uow: UoW, who: Staff) -> SubsidyRulePublic:
    county_only(who)
    rule = await subsidy.create_rule(uow, who.sub, body)
    await commit(uow)
    return _rule_out(rule)


@router.get("/subsidy-rules/{key}", summary="Every version of a rule, oldest first")
async def rule_history(key: SlugText, uow: UoW, who: Caller) -> list[SubsidyRulePublic]:
    versions = await subsidy.versions_of(uow, key)
    if not versions:
        raise Problem(404, "subsidy_rule_not_found", "Subsidy rule not found", _t("No rule {key}.", key=key))
    return [_rule_out(r) for r in versions]


@router.post(
    "/subsidy-rules/{key}/versions",
    status_code=201,
    summary="Change a rule from a date: a new version; past orders keep what they were computed with",
)
async def add_version(key: SlugText, body: SubsidyRuleVersionCreate, uow: UoW, who: Staff) -> SubsidyRulePublic:
    county_only(who)
    rule = await subsidy.add_version(uow, who.sub, key, body)
    await commit(uow)
    return _rule_out(rule)


@router.post("/subsidy-rules/{key}/retire", summary="End a rule after a date (its latest version stops applying)")
async def retire_rule(key: SlugText, body: SubsidyRuleRetire, uow: UoW, who: Staff) -> SubsidyRulePublic:
    county_only(who)
    rule = await subsidy.retire(uow, key, body.effective_to)
    await commit(uow)
    return _rule_out(rule)
