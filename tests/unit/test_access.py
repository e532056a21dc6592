"""``minsheng.platform.access``: the one way a "no" becomes an answer (404 that does not reveal, or a 403 with a
stable code), and the problems it builds answer as the services did before it existed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minsheng.platform.access import (
    ensure,
    ensure_changeable,
    ensure_visible,
    is_staff,
    outside_scope,
    read_only,
    visible_or_404,
)
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem
from minsheng.platform.i18n import load_catalogs, translate


def _who(*roles: Role, scopes: tuple[str, ...] = ()) -> Principal:
    return Principal(sub="s", roles=frozenset(roles), scopes=scopes)


def test_visible_or_404_returns_what_the_caller_sees() -> None:
    thing = {"community": "a"}
    assert visible_or_404(thing, lambda t: t["community"] == "a", "rider", 7) is thing


@pytest.mark.parametrize("found", [None, {"community": "b"}])
def test_missing_and_out_of_reach_answer_the_same_404(found: dict[str, str] | None) -> None:
    seen: list[object] = []

    def sees(t: dict[str, str]) -> bool:
        seen.append(t)
        return t["community"] == "a"

    with pytest.raises(Problem) as caught:
        visible_or_404(found, sees, "hazard_report", "r-1")
    problem = caught.value
    assert (problem.status, problem.code) == (404, "hazard_report_not_found")
    assert translate(problem.detail, "en") == "No hazard report r-1 (or it is outside your scope)."
    assert seen == ([] if found is None else [found])  # the predicate never sees a missing thing


def test_ensure_visible() -> None:
    ensure_visible(True, "task", 1)
    with pytest.raises(Problem) as caught:
        ensure_visible(False, "task", 1)
    assert (caught.value.status, caught.value.code) == (404, "task_not_found")


def test_ensure_raises_the_given_problem_only_when_not_allowed() -> None:
    problem = outside_scope("You cannot post tasks in that community.")
    ensure(True, problem)
    with pytest.raises(Problem) as caught:
        ensure(False, problem)
    assert caught.value is problem
    assert (problem.status, problem.code, problem.title) == (403, "outside_scope", "Outside your scope")
    assert problem.detail == "You cannot post tasks in that community."


@pytest.mark.parametrize(
    ("sees", "changes", "status", "code"),
    [
        (True, True, None, None),
        (False, True, None, None),
        (True, False, 403, "forbidden"),
        (False, False, 404, "household_not_found"),
    ],
)
def test_ensure_changeable_hides_what_is_not_seen(
    sees: bool, changes: bool, status: int | None, code: str | None
) -> None:
    if status is None:
        ensure_changeable(sees, changes, "household", "h-1")
        return
    with pytest.raises(Problem) as caught:
        ensure_changeable(sees, changes, "household", "h-1")
    assert (caught.value.status, caught.value.code) == (status, code)


def test_read_only_names_the_thing_in_each_language() -> None:
    load_catalogs()
    problem = read_only("household")
    assert (problem.status, problem.code, problem.title) == (403, "forbidden", "Not allowed")
    assert translate(problem.detail, "en") == "You may see this household but not change it."
    assert translate(problem.detail, "zh_CN") == "您可以查看该住户，但不能修改。"


def test_is_staff() -> None:
    assert is_staff(_who(Role.staff))
    assert is_staff(_who(Role.admin))
    assert is_staff(_who(Role.resident, scopes=("*",)))  # the whole district is an admin's reach
    assert not is_staff(_who(Role.rider, Role.grid_worker, scopes=("community:a",)))


SERVICES = Path(__file__).resolve().parents[2] / "services"


def test_scope_checks_live_in_the_services_access_modules() -> None:
    """A ``who.covers(...)`` beside a hand-written Problem is the style this module replaced: the check belongs
    in the service's ``access.py`` as a named predicate."""
    inline = [
        f"{path.relative_to(SERVICES)}:{number}"
        for service in ("points", "issues", "canteen", "visits")
        for path in sorted((SERVICES / service).rglob("*.py"))
        if path.name != "access.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\b(who|principal)\.covers\(", line)
    ]
    assert inline == []
