"""Visiting policies: how often each kind of household is visited (built-in defaults, overridable).
Use cases take a unit of work and never commit."""

from __future__ import annotations

from sqlmodel import col, select

from minsheng.platform.errors import UniqueRule, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.visits import schedule
from services.visits.models import (
    CareTag,
    PolicyCreate,
    PolicyUpdate,
    VisitPolicy,
)

POLICY_EXISTS = UniqueRule(VisitPolicy, ["code"], "policy_exists", "A policy with this code already exists.")

# --- policies -----------------------------------------------------------------------------------------------


async def list_policies(uow: UnitOfWork) -> list[VisitPolicy]:
    rows = list((await uow.session.execute(select(VisitPolicy).order_by(col(VisitPolicy.cadence_days)))).scalars())
    if rows:
        return rows
    return [
        VisitPolicy(
            code=r.code,
            name=schedule.BUILTIN_NAMES.get(r.code, r.code),
            cadence_days=r.cadence_days,
            min_age=r.min_age,
            all_tags=[CareTag(t) for t in sorted(r.all_tags)],
            retry_not_home_days=r.retry_not_home_days,
            max_not_home_attempts=r.max_not_home_attempts,
            retry_refused_days=r.retry_refused_days,
        )
        for r in sorted(schedule.BUILTIN_RULES, key=lambda r: r.cadence_days)
    ]


async def _materialize_builtins(uow: UnitOfWork) -> None:
    """The first policy an administrator writes turns the built-in defaults into rows they can edit."""
    if (await uow.session.execute(select(VisitPolicy.id).limit(1))).first() is None:
        for p in await list_policies(uow):
            uow.session.add(p)
        await uow.session.flush()


async def create_policy(uow: UnitOfWork, data: PolicyCreate) -> VisitPolicy:
    await _materialize_builtins(uow)
    dup = await uow.session.execute(select(VisitPolicy.id).where(VisitPolicy.code == data.code))
    if dup.first() is not None:
        raise POLICY_EXISTS.problem(_t("A policy with code {code!r} already exists.", code=data.code))
    policy = VisitPolicy(**data.model_dump())
    uow.session.add(policy)
    await uow.session.flush()
    await schedule.refresh_many(uow)
    return policy


async def update_policy(uow: UnitOfWork, code: str, data: PolicyUpdate) -> VisitPolicy:
    await _materialize_builtins(uow)
    policy = (await uow.session.execute(select(VisitPolicy).where(VisitPolicy.code == code))).scalar_one_or_none()
    if policy is None:
        raise not_found("policy", code)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is not None or key == "min_age":
            setattr(policy, key, value)
    policy.updated_at = utcnow()
    await uow.session.flush()
    await schedule.refresh_many(uow)
    return policy
