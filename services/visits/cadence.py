"""The visiting rules as pure functions: which tier a household follows, when it is next due, what a
"nobody home" or "refused" does to that. No database here, so the rules are tested exhaustively and fast.

- A household follows the most frequent tier (shortest cadence) that any of its active residents matches;
  a tier without criteria matches every household.
- Regularly due: last successful visit + cadence; never visited: due from the day it was registered.
- An attempt made while due that found nobody home schedules a retry after ``retry_not_home_days``; after
  ``max_not_home_attempts`` such tries in a row the household needs a supervisor's attention
  (``unreachable``). A refusal made while due retries after ``retry_refused_days``. An attempt made before
  the household was due changes nothing in its schedule.
- Overdue: the due date has passed (``next_due_on < today``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.visits.models import Attention, Outcome


@dataclass(frozen=True)
class Rule:
    code: str
    cadence_days: int
    min_age: int | None = None
    all_tags: frozenset[str] = frozenset()
    retry_not_home_days: int = 2
    max_not_home_attempts: int = 3
    retry_refused_days: int = 30

    @property
    def catch_all(self) -> bool:
        return self.min_age is None and not self.all_tags


DEFAULT_RULE = Rule("standard", 90)


@dataclass(frozen=True)
class Person:
    tags: frozenset[str]
    birth_date: date | None


@dataclass(frozen=True)
class Schedule:
    last_visited_on: date | None
    last_attempt_on: date | None
    last_outcome: Outcome | None
    failed_attempts: int
    registered_on: date


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def matches(rule: Rule, person: Person, day: date) -> bool:
    if rule.min_age is not None and (person.birth_date is None or age_on(person.birth_date, day) < rule.min_age):
        return False
    return rule.all_tags <= person.tags


def tier_for(rules: Sequence[Rule], people: Iterable[Person], day: date) -> Rule:
    """The most frequent rule any person matches (ties: the first code alphabetically, so it is stable)."""
    ordered = sorted(rules, key=lambda r: (r.cadence_days, r.code))
    people = list(people)
    for rule in ordered:
        if rule.catch_all or any(matches(rule, p, day) for p in people):
            return rule
    return DEFAULT_RULE


def regular_due(rule: Rule, s: Schedule) -> date:
    return s.last_visited_on + timedelta(days=rule.cadence_days) if s.last_visited_on else s.registered_on


def next_due(rule: Rule, s: Schedule) -> date:
    due = regular_due(rule, s)
    if s.last_attempt_on is not None and s.last_attempt_on >= due:
        if s.last_outcome == Outcome.not_home:
            return s.last_attempt_on + timedelta(days=rule.retry_not_home_days)
        if s.last_outcome == Outcome.refused:
            return s.last_attempt_on + timedelta(days=rule.retry_refused_days)
    return due


def attention(rule: Rule, s: Schedule) -> Attention | None:
    if s.last_outcome == Outcome.not_home and s.failed_attempts >= rule.max_not_home_attempts:
        return Attention.unreachable
    if s.last_outcome == Outcome.refused:
        return Attention.refused
    return None


def is_overdue(due: date | None, day: date) -> bool:
    return due is not None and due < day


def need_due_on(urgency: str, raised_on: date) -> date:
    """Default due date of a need by urgency: urgent next day, high 3 days, normal a week, low a month."""
    return raised_on + timedelta(days={"urgent": 1, "high": 3, "normal": 7, "low": 30}.get(urgency, 7))
