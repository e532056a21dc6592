"""Keeping each household's tier and next due date current (the database side of ``cadence``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.visits import cadence
from services.visits.cadence import Person, Rule, Schedule
from services.visits.config import local_date, today
from services.visits.models import Household, Outcome, Resident, ResidentStatus, VisitPolicy

# Used until an administrator defines policies (the demo seeds the same ones as rows).
BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("standard", 90),  # every household each quarter
    Rule("elderly_80", 30, min_age=80),
    Rule("dibao", 30, all_tags=frozenset({"dibao"})),
    Rule("disabled", 30, all_tags=frozenset({"disabled"})),
    Rule("tekun", 14, all_tags=frozenset({"tekun"})),
    Rule("elder_alone", 7, min_age=60, all_tags=frozenset({"living_alone"})),  # elders living alone: weekly
)

BUILTIN_NAMES = {
    "standard": "每户每季度 Every household each quarter",
    "elderly_80": "80岁以上 Aged 80+ monthly",
    "dibao": "低保户 Minimum-allowance households monthly",
    "disabled": "残疾人 Residents with disabilities monthly",
    "tekun": "特困人员 Extreme-hardship residents fortnightly",
    "elder_alone": "独居老人 Elders living alone weekly",
}


def rule_of(p: VisitPolicy) -> Rule:
    return Rule(
        p.code,
        p.cadence_days,
        p.min_age,
        frozenset(str(t) for t in p.all_tags),
        p.retry_not_home_days,
        p.max_not_home_attempts,
        p.retry_refused_days,
    )


async def load_rules(uow: UnitOfWork) -> list[Rule]:
    rows = list((await uow.session.execute(select(VisitPolicy))).scalars())
    if not rows:
        return list(BUILTIN_RULES)
    rules = [rule_of(p) for p in rows if p.active]
    return rules or [cadence.DEFAULT_RULE]


def tags_of(stored: str) -> frozenset[str]:
    return frozenset(t for t in stored.split(",") if t)


def store_tags(tags: Iterable[str]) -> str:
    return "," + "".join(f"{t}," for t in sorted({str(t) for t in tags}))


def schedule_of(h: Any) -> Schedule:
    return Schedule(
        last_visited_on=local_date(h.last_visited_at) if h.last_visited_at else None,
        last_attempt_on=local_date(h.last_attempt_at) if h.last_attempt_at else None,
        last_outcome=Outcome(h.last_outcome) if h.last_outcome else None,
        failed_attempts=h.failed_attempts,
        registered_on=local_date(h.created_at),
    )


def plan(rules: Sequence[Rule], people: Sequence[Person], s: Schedule, day: date) -> dict[str, Any]:
    """The household columns the rules give for these residents and this visiting history."""
    rule = cadence.tier_for(rules, people, day)
    attention = cadence.attention(rule, s)
    return {
        "tier": rule.code,
        "cadence_days": rule.cadence_days,
        "active_residents": len(people),
        "next_due_on": cadence.next_due(rule, s) if people else None,
        "attention": attention.value if attention else None,
    }


async def people_of(uow: UnitOfWork, household_ids: Sequence[UUID] | None) -> dict[UUID, list[Person]]:
    query = sa.select(col(Resident.household_id), col(Resident.tags), col(Resident.birth_date)).where(
        col(Resident.status) == ResidentStatus.active
    )
    if household_ids is not None:
        query = query.where(col(Resident.household_id).in_(household_ids))
    people: dict[UUID, list[Person]] = defaultdict(list)
    for hid, tags, born in (await uow.session.execute(query)).all():
        people[hid].append(Person(tags_of(tags), born))
    return people


async def refresh(uow: UnitOfWork, household: Household, rules: Sequence[Rule] | None = None) -> None:
    """Recompute one household loaded in this session (after a visit or a change to its residents)."""
    rules = rules if rules is not None else await load_rules(uow)
    people = (await people_of(uow, [household.id])).get(household.id, [])
    for key, value in plan(rules, people, schedule_of(household), today()).items():
        setattr(household, key, value)
    household.updated_at = utcnow()


async def reschedule(uow: UnitOfWork, household: Household) -> None:
    """After a visit: the tier stays (its residents did not change), only the due date and attention move."""
    rules = await load_rules(uow)
    rule = next((r for r in rules if r.code == household.tier), None)
    if rule is None:  # its tier was retired meanwhile
        await refresh(uow, household, rules)
        return
    s = schedule_of(household)
    attention = cadence.attention(rule, s)
    household.next_due_on = cadence.next_due(rule, s) if household.active_residents else None
    household.attention = attention.value if attention else None
    household.updated_at = utcnow()


async def refresh_many(uow: UnitOfWork, household_ids: Sequence[UUID] | None = None, *, batch: int = 2000) -> int:
    """Recompute many households (a policy changed, residents came of age) with batched Core updates.
    ``None`` means every household. Returns how many rows changed."""
    rules = await load_rules(uow)
    t = table_of(Household)
    query = sa.select(
        t.c.id,
        t.c.last_visited_at,
        t.c.last_attempt_at,
        t.c.last_outcome,
        t.c.failed_attempts,
        t.c.created_at,
        t.c.tier,
        t.c.cadence_days,
        t.c.next_due_on,
        t.c.attention,
        t.c.active_residents,
    ).order_by(t.c.id)
    if household_ids is not None:
        query = query.where(t.c.id.in_(list(household_ids)))
    rows = (await uow.session.execute(query)).all()
    day = today()
    changed = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        people = await people_of(uow, [r.id for r in chunk])
        updates = []
        for r in chunk:
            new = plan(rules, people.get(r.id, []), schedule_of(r), day)
            if any(getattr(r, k) != v for k, v in new.items()):
                updates.append({"hid": r.id, **new})
        if updates:
            await uow.session.execute(
                sa.update(t)
                .where(t.c.id == sa.bindparam("hid"))
                .values(
                    tier=sa.bindparam("tier"),
                    cadence_days=sa.bindparam("cadence_days"),
                    active_residents=sa.bindparam("active_residents"),
                    next_due_on=sa.bindparam("next_due_on"),
                    attention=sa.bindparam("attention"),
                    updated_at=utcnow(),
                ),
                updates,
            )
            changed += len(updates)
    return changed


async def refresh_coming_of_age(uow: UnitOfWork, lookback_days: int = 3) -> int:
    """Residents who reached a policy's minimum age in the last few days may move their household to a
    more frequent tier. Cheap (an indexed range on birth_date per age threshold) and idempotent."""
    rules = await load_rules(uow)
    day = today()
    ids: set[UUID] = set()
    for age in {r.min_age for r in rules if r.min_age is not None}:
        latest = _years_before(day, age)
        earliest = latest - timedelta(days=lookback_days)
        found = await uow.session.execute(
            select(Resident.household_id).where(
                col(Resident.birth_date) > earliest,
                col(Resident.birth_date) <= latest,
                Resident.status == ResidentStatus.active,
            )
        )
        ids.update(found.scalars())
    return await refresh_many(uow, sorted(ids, key=str)) if ids else 0


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
