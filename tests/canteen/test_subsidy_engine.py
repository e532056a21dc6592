"""The subsidy rule engine on its own: matching, stacking, caps, versions in force, and money invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from services.canteen.subsidy import MealContext, Usage, age_on, circumstances_on, compute, matches


@dataclass
class Rule:
    key: str
    amount_fen: int
    category: str = "cat"
    funder: str = "county_civil_affairs"
    stack_group: str = "base"
    min_age: int | None = None
    max_age: int | None = None
    circumstances: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    fulfilments: list[str] = field(default_factory=list)
    meal_kinds: list[str] = field(default_factory=list)
    canteen_ids: list[Any] = field(default_factory=list)
    daily_cap_fen: int | None = None
    monthly_cap_fen: int | None = None
    effective_from: date = date(2031, 1, 1)
    effective_to: date | None = None
    version: int = 1
    id: UUID = field(default_factory=uuid4)


DAY = date(2031, 3, 10)


def ctx(**kw: Any) -> MealContext:
    base: dict[str, Any] = {
        "meal_date": DAY,
        "age": 82,
        "circumstances": frozenset({"age_80_plus"}),
        "slot": "lunch",
        "fulfilment": "dine_in",
        "meal_kind": "standard",
        "canteen_id": "c1",
        "price_fen": 1000,
    }
    return MealContext(**{**base, **kw})


BANDS = [
    Rule("age-60-69", 100, min_age=60, max_age=69),
    Rule("age-70-79", 200, min_age=70, max_age=79),
    Rule("age-80-plus", 300, min_age=80),
]


def test_age_is_counted_on_the_meal_date() -> None:
    assert age_on(date(1951, 3, 11), DAY) == 79
    assert age_on(date(1951, 3, 10), DAY) == 80
    assert "age_80_plus" in circumstances_on([], date(1951, 3, 10), DAY)
    assert "age_80_plus" not in circumstances_on(["dibao"], date(1951, 3, 11), DAY)


def test_age_bands_pick_exactly_one() -> None:
    for age, amount in [(59, 0), (60, 100), (69, 100), (70, 200), (79, 200), (80, 300), (101, 300)]:
        result = compute(BANDS, ctx(age=age))
        assert result.subsidy_fen == amount, age
        assert result.elder_pays_fen == 1000 - amount


def test_groups_add_up_and_within_a_group_the_largest_wins() -> None:
    rules = [
        *BANDS,
        Rule("dibao", 200, stack_group="circumstance", circumstances=["dibao"]),
        Rule("tekun", 700, stack_group="circumstance", circumstances=["tekun"]),
        Rule("disabled", 100, stack_group="disability", circumstances=["disabled"], funder="cdpf"),
    ]
    result = compute(rules, ctx(age=75, circumstances=frozenset({"dibao", "tekun", "disabled"})))
    assert [(r.key, a) for r, a in result.lines] == [("age-70-79", 200), ("tekun", 700), ("disabled", 100)]
    assert result.subsidy_fen == 1000 and result.elder_pays_fen == 0
    assert {f.funder: f.amount_fen for f in result.funding()} == {"county_civil_affairs": 900, "cdpf": 100}


def test_subsidy_never_exceeds_the_price() -> None:
    rules = [Rule("base", 800), Rule("extra", 800, stack_group="more")]
    result = compute(rules, ctx(price_fen=1000))
    assert [a for _, a in result.lines] == [800, 200] and result.elder_pays_fen == 0


def test_daily_and_monthly_caps() -> None:
    rule = Rule("age-80-plus", 300, min_age=80, daily_cap_fen=600, monthly_cap_fen=1000)
    assert compute([rule], ctx(), {"age-80-plus": Usage(day=300, month=300)}).subsidy_fen == 300
    assert compute([rule], ctx(), {"age-80-plus": Usage(day=500, month=500)}).subsidy_fen == 100
    assert compute([rule], ctx(), {"age-80-plus": Usage(day=600, month=600)}).subsidy_fen == 0
    assert compute([rule], ctx(), {"age-80-plus": Usage(day=0, month=900)}).subsidy_fen == 100
    capped = compute([rule], ctx(), {"age-80-plus": Usage(day=0, month=1000)})
    assert capped.subsidy_fen == 0 and any("capped" in n for n in capped.notes)


def test_a_capped_rule_gives_way_to_the_next_best_in_its_group() -> None:
    rules = [Rule("big", 500, daily_cap_fen=500), Rule("small", 100)]
    assert [(r.key, a) for r, a in compute(rules, ctx(), {"big": Usage(day=500)}).lines] == [("small", 100)]


def test_conditions_slot_fulfilment_kind_canteen_and_dates() -> None:
    rule = Rule(
        "r",
        100,
        slots=["lunch"],
        fulfilments=["delivery"],
        meal_kinds=["soft"],
        canteen_ids=["c1"],
        effective_from=date(2031, 3, 1),
        effective_to=date(2031, 3, 31),
    )
    ok = ctx(fulfilment="delivery", meal_kind="soft")
    assert matches(rule, ok)
    assert not matches(rule, ctx(fulfilment="delivery", meal_kind="soft", slot="dinner"))
    assert not matches(rule, ctx(meal_kind="soft"))
    assert not matches(rule, ctx(fulfilment="delivery"))
    assert not matches(rule, ctx(fulfilment="delivery", meal_kind="soft", canteen_id="c2"))
    assert not matches(rule, ctx(fulfilment="delivery", meal_kind="soft", meal_date=date(2031, 4, 1)))
    assert not matches(rule, ctx(fulfilment="delivery", meal_kind="soft", meal_date=date(2031, 2, 28)))


def test_suspended_diners_and_extra_meals_get_nothing() -> None:
    assert compute(BANDS, ctx(suspended=True)).subsidy_fen == 0
    assert compute(BANDS, ctx(extra=True)).subsidy_fen == 0


rule_st = st.builds(
    Rule,
    key=st.sampled_from(["a", "b", "c", "d"]),
    amount_fen=st.integers(0, 2000),
    stack_group=st.sampled_from(["base", "x", "y"]),
    min_age=st.one_of(st.none(), st.integers(55, 90)),
    daily_cap_fen=st.one_of(st.none(), st.integers(0, 1500)),
    monthly_cap_fen=st.one_of(st.none(), st.integers(0, 9000)),
)


@settings(max_examples=100, deadline=None)
@given(
    rules=st.lists(rule_st, max_size=4, unique_by=lambda r: r.key),
    age=st.integers(50, 105),
    price=st.integers(0, 3000),
    used_day=st.integers(0, 2000),
    used_month=st.integers(0, 9000),
)
def test_money_always_adds_up(rules: list[Rule], age: int, price: int, used_day: int, used_month: int) -> None:
    usage = {k: Usage(day=used_day, month=used_month) for k in "abcd"}
    result = compute(rules, ctx(age=age, price_fen=price), usage)
    assert 0 <= result.subsidy_fen <= price
    assert result.subsidy_fen + result.elder_pays_fen == price
    assert all(a > 0 for _, a in result.lines)
    assert len({r.stack_group for r, _ in result.lines}) == len(result.lines)  # one rule per group
    for rule, amount in result.lines:
        assert amount <= rule.amount_fen
        if rule.daily_cap_fen is not None:
            assert amount <= max(rule.daily_cap_fen - used_day, 0)
        if rule.monthly_cap_fen is not None:
            assert amount <= max(rule.monthly_cap_fen - used_month, 0)
    assert compute(list(reversed(rules)), ctx(age=age, price_fen=price), usage).lines == result.lines
