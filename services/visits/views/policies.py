"""Routes under ``/visits/policies``: visiting tiers and their cadence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from minsheng.platform.inputs import text
from minsheng.platform.service import UoW
from services.visits import policies
from services.visits.models import PolicyCreate, PolicyPublic, PolicyUpdate
from services.visits.views.deps import ADMIN, FIELD, commit

router = APIRouter(tags=["policy"])


@router.get("/policies", dependencies=[FIELD], summary="Visiting tiers and their cadence / retry rules")
async def list_policies(uow: UoW) -> list[PolicyPublic]:
    return [PolicyPublic.model_validate(p, from_attributes=True) for p in await policies.list_policies(uow)]


@router.post(
    "/policies", status_code=201, dependencies=[ADMIN], summary="Add a tier; every household's schedule follows at once"
)
async def create_policy(body: PolicyCreate, uow: UoW) -> PolicyPublic:
    policy = await policies.create_policy(uow, body)
    await commit(uow)
    return PolicyPublic.model_validate(policy, from_attributes=True)


@router.patch("/policies/{code}", dependencies=[ADMIN])
async def update_policy(code: Annotated[str, text(40)], body: PolicyUpdate, uow: UoW) -> PolicyPublic:
    policy = await policies.update_policy(uow, code, body)
    await commit(uow)
    return PolicyPublic.model_validate(policy, from_attributes=True)
