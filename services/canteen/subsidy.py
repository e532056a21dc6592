"""The subsidy rule engine (pure) and the use cases that manage versioned rules.

A rule is a chain of immutable versions under one ``key``; each version applies from ``effective_from`` to
``effective_to`` (inclusive; open-ended when None). A new version closes the previous one the day before it
starts, so exactly one version of a key applies on any date. Orders freeze the lines computed at order time:
adding a version never rewrites an order.

Combining rules: every matching rule is a candidate; within a ``stack_group`` only the largest (after caps)
applies, and the groups add up (e.g. an age band in ``base`` plus a 低保 supplement in ``circumstance``).
The total never exceeds the price, so the elder never pays less than nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.errors import Problem, conflict, invalid, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import uuid7
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.models import (
    Circumstance,
    Diner,
    DinerStatus,
    Fulfilment,
    FundingShare,
    LineStatus,
    Menu,
    Quote,
    SetMeal,
    SubsidyLine,
    SubsidyLinePublic,
    SubsidyRule,
    SubsidyRuleCreate,
    SubsidyRuleTerms,
    SubsidyRuleVersionCreate,
)


class RuleLike(Protocol):
    """What the engine reads of a rule version (a ``SubsidyRule`` row, or anything shaped like one)."""

    @property
    def id(self) -> UUID: ...
    @property
    def key(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def category(self) -> str: ...
    @property
    def funder(self) -> str: ...
    @property
    def amount_fen(self) -> int: ...
    @property
    def stack_group(self) -> str: ...
    @property
    def min_age(self) -> int | None: ...
    @property
    def max_age(self) -> int | None: ...
    @property
    def circumstances(self) -> Sequence[str]: ...
    @property
    def slots(self) -> Sequence[str]: ...
    @property
    def fulfilments(self) -> Sequence[str]: ...
    @property
    def meal_kinds(self) -> Sequence[str]: ...
    @property
    def canteen_ids(self) -> Sequence[Any]: ...
    @property
    def daily_cap_fen(self) -> int | None: ...
    @property
    def monthly_cap_fen(self) -> int | None: ...
    @property
    def effective_from(self) -> date: ...
    @property
    def effective_to(self) -> date | None: ...


@dataclass(frozen=True)
class MealContext:
    """Everything the rules may look at, as of the meal date."""

    meal_date: date
    age: int
    circumstances: frozenset[str]
    slot: str
    fulfilment: str
    meal_kind: str
    canteen_id: str
    price_fen: int
    suspended: bool = False
    extra: bool = False


@dataclass(frozen=True)
class Usage:
    """Subsidy a rule key already paid this diner on the meal date and in its month (fen)."""

    day: int = 0
    month: int = 0


@dataclass
class Computation:
    price_fen: int
    lines: list[tuple[RuleLike, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def subsidy_fen(self) -> int:
        return sum(amount for _, amount in self.lines)

    @property
    def elder_pays_fen(self) -> int:
        return self.price_fen - self.subsidy_fen

    def funding(self) -> list[FundingShare]:
        by_funder: dict[str, int] = {}
        for rule, amount in self.lines:
            by_funder[rule.funder] = by_funder.get(rule.funder, 0) + amount
        return [FundingShare(funder=f, amount_fen=a) for f, a in sorted(by_funder.items())]

    def line_rows(self, *, order_id: UUID, diner_id: UUID, canteen_id: UUID, meal_date: date) -> list[dict[str, Any]]:
        """The order's ``order_subsidy_lines`` rows: what each rule pays, frozen at order time."""
        return [
            {
                "id": uuid7(),
                "order_id": order_id,
                "diner_id": diner_id,
                "canteen_id": canteen_id,
                "meal_date": meal_date,
                "rule_id": rule.id,
                "rule_key": rule.key,
                "rule_version": rule.version,
                "category": rule.category,
                "funder": rule.funder,
                "amount_fen": amount,
                "status": LineStatus.claimed.value,
            }
            for rule, amount in self.lines
        ]

    def quote(self) -> Quote:
        return Quote(
            price_fen=self.price_fen,
            subsidy_fen=self.subsidy_fen,
            elder_pays_fen=self.elder_pays_fen,
            lines=[line_public(r, a) for r, a in self.lines],
            funding=self.funding(),
            notes=self.notes,
        )


def line_public(rule: RuleLike, amount: int, status: str = LineStatus.claimed) -> SubsidyLinePublic:
    return SubsidyLinePublic(
        rule_id=rule.id,
        rule_key=rule.key,
        rule_version=rule.version,
        category=rule.category,
        funder=rule.funder,
        amount_fen=amount,
        status=LineStatus(status),
    )


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def circumstances_on(stated: Iterable[str], birth: date, day: date) -> frozenset[str]:
    found = set(stated)
    if age_on(birth, day) >= 80:
        found.add(Circumstance.age_80_plus.value)
    return frozenset(found)


def in_force(rule: RuleLike, day: date) -> bool:
    return rule.effective_from <= day and (rule.effective_to is None or day <= rule.effective_to)


def matches(rule: RuleLike, ctx: MealContext) -> bool:
    if not in_force(rule, ctx.meal_date):
        return False
    if rule.min_age is not None and ctx.age < rule.min_age:
        return False
    if rule.max_age is not None and ctx.age > rule.max_age:
        return False
    if rule.circumstances and not ctx.circumstances.intersection(str(c) for c in rule.circumstances):
        return False
    if rule.slots and ctx.slot not in {str(s) for s in rule.slots}:
        return False
    if rule.fulfilments and ctx.fulfilment not in {str(f) for f in rule.fulfilments}:
        return False
    if rule.meal_kinds and ctx.meal_kind not in rule.meal_kinds:
        return False
    return not (rule.canteen_ids and ctx.canteen_id not in {str(c) for c in rule.canteen_ids})


def capped(rule: RuleLike, usage: Usage) -> int:
    amount = rule.amount_fen
    if rule.daily_cap_fen is not None:
        amount = min(amount, rule.daily_cap_fen - usage.day)
    if rule.monthly_cap_fen is not None:
        amount = min(amount, rule.monthly_cap_fen - usage.month)
    return max(amount, 0)


def compute(rules: Sequence[RuleLike], ctx: MealContext, usage: Mapping[str, Usage] | None = None) -> Computation:
    """The subsidy for one meal. Deterministic: same rules, context and usage → same lines."""
    result = Computation(price_fen=ctx.price_fen)
    if ctx.extra:
        result.notes.append("extra meal in the same slot: not subsidised")
        return result
    if ctx.suspended:
        result.notes.append("subsidy suspended for this diner on the meal date")
        return result
    usage = usage or {}
    best: dict[str, tuple[RuleLike, int]] = {}
    for rule in sorted(rules, key=lambda r: (r.key, r.version)):
        if not matches(rule, ctx):
            continue
        amount = capped(rule, usage.get(rule.key, Usage()))
        if amount < rule.amount_fen:
            result.notes.append(f"{rule.key}: capped at {amount} fen")
        current = best.get(rule.stack_group)
        if amount > 0 and (current is None or amount > current[1]):
            best[rule.stack_group] = (rule, amount)
    remaining = ctx.price_fen
    for group in sorted(best, key=lambda g: (g != "base", g)):
        rule, amount = best[group]
        amount = min(amount, remaining)
        if amount <= 0:
            result.notes.append(f"{rule.key}: meal already fully subsidised")
            continue
        remaining -= amount
        result.lines.append((rule, amount))
    return result


# --- persistence -----------------------------------------------------------------------------------------------


def _rules_with_usage_statement() -> Any:
    """The rules in force on ``:day``, each capped one with what its key already paid ``:diner_id`` on that day and
    in its month (``:first`` to ``:next``; cancelled lines don't count)."""
    rules, lines = table_of(SubsidyRule), table_of(SubsidyLine)
    day = sa.bindparam("day", type_=sa.Date())

    def paid(amount: Any) -> Any:
        return (
            sa.select(sa.func.coalesce(sa.func.sum(amount), 0))
            .where(
                lines.c.diner_id == sa.bindparam("diner_id"),
                lines.c.rule_key == rules.c.key,
                lines.c.meal_date >= sa.bindparam("first", type_=sa.Date()),
                lines.c.meal_date < sa.bindparam("next", type_=sa.Date()),
                lines.c.status != LineStatus.cancelled.value,
            )
            .scalar_subquery()
        )

    capped = sa.or_(rules.c.daily_cap_fen.is_not(None), rules.c.monthly_cap_fen.is_not(None))
    ends = rules.c.effective_to
    return sa.select(
        *rules.c,
        sa.case((capped, paid(sa.case((lines.c.meal_date == day, lines.c.amount_fen), else_=0))), else_=0).label(
            "paid_on_the_day"
        ),
        sa.case((capped, paid(lines.c.amount_fen)), else_=0).label("paid_in_the_month"),
    ).where(rules.c.effective_from <= day, sa.or_(ends.is_(None), ends >= day))


# Read on every booking: built once (bound parameters), so it is compiled once and runs on the fast path; rules
# and cap usage come in one round trip, each rule as a Core row (a ``RuleLike``: the engine reads, never writes).
_RULES_WITH_USAGE = _rules_with_usage_statement()


async def compute_for(uow: UnitOfWork, ctx: MealContext, diner_id: UUID) -> Computation:
    first = ctx.meal_date.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    rows = await uow.fetch(_RULES_WITH_USAGE, {"day": ctx.meal_date, "diner_id": diner_id, "first": first, "next": nxt})
    candidates: list[RuleLike] = []
    usage: dict[str, Usage] = {}
    for rule in rows:
        if matches(rule, ctx):  # type: ignore[arg-type]  # a Row with the rule's columns
            candidates.append(rule)  # type: ignore[arg-type]
            usage[rule.key] = Usage(day=int(rule.paid_on_the_day), month=int(rule.paid_in_the_month))
    return compute(candidates, ctx, usage)


def subsidy_suspended(diner: Diner, day: date) -> bool:
    if diner.status in (DinerStatus.suspended, DinerStatus.deceased):
        return diner.subsidy_suspended_from is None or day >= diner.subsidy_suspended_from
    return diner.subsidy_suspended_from is not None and day >= diner.subsidy_suspended_from


async def quote(
    uow: UnitOfWork, diner: Diner, menu: Menu, meal: SetMeal, fulfilment: Fulfilment, extra: bool = False
) -> Computation:
    ctx = MealContext(
        meal_date=menu.meal_date,
        age=age_on(diner.birth_date, menu.meal_date),
        circumstances=circumstances_on(diner.circumstances, diner.birth_date, menu.meal_date),
        slot=menu.slot,
        fulfilment=fulfilment.value,
        meal_kind=meal.kind,
        canteen_id=str(menu.canteen_id),
        price_fen=meal.price_fen,
        suspended=subsidy_suspended(diner, menu.meal_date),
        extra=extra,
    )
    return await compute_for(uow, ctx, diner.id)


# --- managing rules --------------------------------------------------------------------------------------------


def _terms(data: SubsidyRuleTerms) -> dict[str, Any]:
    terms = data.model_dump(include=set(SubsidyRuleTerms.model_fields))
    terms["canteen_ids"] = [str(c) for c in data.canteen_ids]
    return terms


def _check_dates(effective_from: date, effective_to: date | None) -> None:
    if effective_from < config.today():
        raise invalid(
            "effective_from_in_past",
            "Rules cannot start in the past",
            "A rule change never rewrites past orders: start it today or later.",
            field="effective_from",
            message="must be today or later",
        )
    if effective_to is not None and effective_to < effective_from:
        raise invalid(
            "validation_error",
            "The request is not valid",
            "effective_to is before effective_from",
            field="effective_to",
            message="before effective_from",
        )


async def versions_of(uow: UnitOfWork, key: str, *, for_update: bool = False) -> list[SubsidyRule]:
    query = select(SubsidyRule).where(SubsidyRule.key == key).order_by(col(SubsidyRule.version))
    if for_update and uow.db.is_postgres:
        query = query.with_for_update()
    return list((await uow.session.execute(query)).scalars())


async def create_rule(uow: UnitOfWork, actor: str, data: SubsidyRuleCreate) -> SubsidyRule:
    _check_dates(data.effective_from, data.effective_to)
    if await versions_of(uow, data.key):
        raise conflict(
            "subsidy_rule_exists", _t("Rule {key} exists; add a version instead.", key=data.key), key=data.key
        )
    rule = SubsidyRule(
        key=data.key,
        version=1,
        effective_from=data.effective_from,
        effective_to=data.effective_to,
        created_by=actor,
        **_terms(data),
    )
    uow.session.add(rule)
    try:
        await uow.session.flush()
    except sa.exc.IntegrityError as exc:
        raise conflict("subsidy_rule_exists", _t("Rule {key} exists; add a version instead.", key=data.key)) from exc
    return rule


async def add_version(uow: UnitOfWork, actor: str, key: str, data: SubsidyRuleVersionCreate) -> SubsidyRule:
    """A new version from ``effective_from``; the version in force then ends the day before."""
    _check_dates(data.effective_from, data.effective_to)
    versions = await versions_of(uow, key, for_update=True)
    if not versions:
        raise not_found("subsidy_rule", key)
    latest = versions[-1]
    if data.effective_from <= latest.effective_from:
        raise conflict(
            "version_not_after_latest",
            _t(
                "Version {version} starts {effective_from}; a new version must start later.",
                version=latest.version,
                effective_from=latest.effective_from,
            ),
            latest_effective_from=latest.effective_from.isoformat(),
        )
    if latest.effective_to is None or latest.effective_to >= data.effective_from:
        latest.effective_to = data.effective_from - timedelta(days=1)
    rule = SubsidyRule(
        key=key,
        version=latest.version + 1,
        effective_from=data.effective_from,
        effective_to=data.effective_to,
        created_by=actor,
        **_terms(data),
    )
    uow.session.add(rule)
    try:
        await uow.session.flush()
    except sa.exc.IntegrityError as exc:
        raise conflict("concurrent_rule_change", "Another version was added at the same time; retry.") from exc
    return rule


async def retire(uow: UnitOfWork, key: str, effective_to: date) -> SubsidyRule:
    if effective_to < config.today() - timedelta(days=1):
        raise Problem(
            422,
            "effective_to_in_past",
            "Rules cannot end in the past",
            "Past orders keep their subsidy: end the rule yesterday at the earliest.",
        )
    versions = await versions_of(uow, key, for_update=True)
    if not versions:
        raise not_found("subsidy_rule", key)
    latest = versions[-1]
    if effective_to < latest.effective_from:
        raise conflict(
            "retire_before_start",
            _t("The latest version starts {effective_from}.", effective_from=latest.effective_from),
        )
    latest.effective_to = effective_to
    return latest


async def list_rules(uow: UnitOfWork, page: PageRequest, *, on: date | None, key: str | None) -> Page[SubsidyRule]:
    query = select(SubsidyRule)
    if on is not None:
        query = query.where(
            SubsidyRule.effective_from <= on,
            sa.or_(col(SubsidyRule.effective_to).is_(None), col(SubsidyRule.effective_to) >= on),
        )
    if key is not None:
        query = query.where(SubsidyRule.key == key)
    by_key_and_version = Keyset((SubsidyRule.key, SubsidyRule.version), kinds=(str, int), descending=False)
    return await keyset_page(uow.session, query, by_key_and_version, page)
