"""The visiting rules as pure functions: tiers, due dates, retries, overdue; and ID-number checks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.visits import cadence, idcard
from services.visits.cadence import Person, Rule, Schedule
from services.visits.models import Attention, Outcome
from services.visits.schedule import BUILTIN_RULES

TODAY = date(2026, 11, 27)
RULES = list(BUILTIN_RULES)


def person(age: int, *tags: str, born_offset_days: int = 0) -> Person:
    born = date(TODAY.year - age, TODAY.month, TODAY.day) + timedelta(days=born_offset_days)
    return Person(frozenset(tags), born)


def rule(code: str) -> Rule:
    return next(r for r in RULES if r.code == code)


@pytest.mark.parametrize(
    ("people", "expected"),
    [
        ([person(85, "living_alone")], "elder_alone"),  # 赵: over 80, living alone → weekly
        ([person(62, "living_alone")], "elder_alone"),
        ([person(45, "living_alone")], "standard"),  # living alone but not an elder
        ([person(81), person(79)], "elderly_80"),
        ([person(40, "dibao"), person(12)], "dibao"),
        ([person(50, "tekun", "dibao")], "tekun"),  # the most frequent matching tier wins
        ([person(30), person(28)], "standard"),
        ([], "standard"),
        ([person(80, born_offset_days=1)], "standard"),  # turns 80 tomorrow
        ([person(80)], "elderly_80"),  # turns 80 today
        ([Person(frozenset({"living_alone"}), None)], "standard"),  # age unknown: age rules do not apply
    ],
)
def test_tier_is_the_most_frequent_matching_rule(people: list[Person], expected: str) -> None:
    assert cadence.tier_for(RULES, people, TODAY).code == expected


def test_without_a_catch_all_rule_the_default_quarterly_applies() -> None:
    only_elders = [Rule("elders", 30, min_age=70)]
    assert cadence.tier_for(only_elders, [person(30)], TODAY) == cadence.DEFAULT_RULE
    assert cadence.tier_for(only_elders, [person(75)], TODAY).code == "elders"


def sched(
    visited: date | None = None,
    attempt: date | None = None,
    outcome: Outcome | None = None,
    failed: int = 0,
    registered: date = date(2026, 1, 5),
) -> Schedule:
    return Schedule(visited, attempt, outcome, failed, registered)


def test_never_visited_is_due_from_registration() -> None:
    s = sched()
    assert cadence.next_due(rule("standard"), s) == date(2026, 1, 5)
    assert cadence.is_overdue(cadence.next_due(rule("standard"), s), TODAY)


def test_a_visit_makes_the_household_due_again_after_its_cadence() -> None:
    s = sched(visited=date(2026, 11, 20), attempt=date(2026, 11, 20), outcome=Outcome.visited)
    assert cadence.next_due(rule("elder_alone"), s) == date(2026, 11, 27)
    assert cadence.next_due(rule("standard"), s) == date(2027, 2, 18)
    # Due today is not overdue; tomorrow it is.
    assert not cadence.is_overdue(date(2026, 11, 27), TODAY)
    assert cadence.is_overdue(date(2026, 11, 26), TODAY)
    assert not cadence.is_overdue(None, TODAY)


def test_nobody_home_while_due_retries_after_the_retry_days() -> None:
    r = rule("standard")
    s = sched(visited=date(2026, 8, 1), attempt=date(2026, 11, 1), outcome=Outcome.not_home, failed=1)
    assert cadence.regular_due(r, s) == date(2026, 10, 30)
    assert cadence.next_due(r, s) == date(2026, 11, 3)
    assert cadence.attention(r, s) is None
    after_three = sched(visited=date(2026, 8, 1), attempt=date(2026, 11, 5), outcome=Outcome.not_home, failed=3)
    assert cadence.attention(r, after_three) == Attention.unreachable


def test_an_early_attempt_does_not_move_the_schedule() -> None:
    r = rule("standard")
    s = sched(visited=date(2026, 10, 1), attempt=date(2026, 10, 15), outcome=Outcome.not_home, failed=1)
    assert cadence.next_due(r, s) == date(2026, 12, 30)


def test_a_refusal_while_due_retries_after_the_refusal_days() -> None:
    r = rule("standard")
    s = sched(visited=date(2026, 6, 1), attempt=date(2026, 9, 1), outcome=Outcome.refused)
    assert cadence.next_due(r, s) == date(2026, 10, 1)
    assert cadence.attention(r, s) == Attention.refused


@given(
    cadence_days=st.integers(1, 366),
    retry=st.integers(1, 60),
    refused=st.integers(1, 366),
    visited=st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2030, 1, 1))),
    attempt_gap=st.integers(0, 800),
    outcome=st.sampled_from(list(Outcome)),
)
def test_the_next_due_date_never_precedes_the_regular_one_and_retries_follow_the_attempt(
    cadence_days: int, retry: int, refused: int, visited: date | None, attempt_gap: int, outcome: Outcome
) -> None:
    r = Rule("x", cadence_days, retry_not_home_days=retry, retry_refused_days=refused)
    base = visited or date(2020, 1, 1)
    attempt = base + timedelta(days=attempt_gap)
    s = Schedule(attempt if outcome == Outcome.visited else visited, attempt, outcome, 1, date(2020, 1, 1))
    due = cadence.next_due(r, s)
    assert due >= cadence.regular_due(r, s)
    if outcome != Outcome.visited and attempt >= cadence.regular_due(r, s):
        assert due > attempt
    if outcome == Outcome.visited:
        assert due == attempt + timedelta(days=cadence_days)


def test_needs_are_due_by_urgency() -> None:
    assert cadence.need_due_on("urgent", TODAY) == date(2026, 11, 28)
    assert cadence.need_due_on("high", TODAY) == date(2026, 11, 30)
    assert cadence.need_due_on("normal", TODAY) == date(2026, 12, 4)
    assert cadence.need_due_on("low", TODAY) == date(2026, 12, 27)


def test_age_counts_birthdays() -> None:
    assert cadence.age_on(date(1941, 3, 8), date(2026, 3, 7)) == 84
    assert cadence.age_on(date(1941, 3, 8), date(2026, 3, 8)) == 85


def test_id_numbers_are_checked() -> None:
    number = idcard.make("140226", date(1941, 3, 8), 25)
    assert len(number) == 18 and idcard.problem_with(number) is None
    assert idcard.birth_date_of(number) == date(1941, 3, 8)
    assert idcard.problem_with(number.lower()) is None  # a lower-case x is accepted
    wrong_check = number[:17] + ("0" if number[17] != "0" else "1")
    assert idcard.problem_with(wrong_check) == "the check character does not match"
    assert idcard.problem_with("14022619411308002X") == "positions 7-14 must be a birth date"
    assert idcard.problem_with("12345") is not None
    assert idcard.problem_with("11010519491231002X") is None  # the GB 11643 example number
