"""The list-filter helper: each filter written once; the shape (cache key) and the parameters derived from it;
one set of clause objects per shape, so a statement cached per shape compiles once."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from minsheng.platform.auth import Principal, Role
from minsheng.platform.filters import Filter, Filters, equals, where_given
from minsheng.platform.ids import utcnow
from services.issues.queries import IssueFilters, _list_statement, list_query, visibility

t = sa.table("t", sa.column("kind", sa.String()), sa.column("size", sa.Integer()), sa.column("tags", sa.String()))


@dataclass
class Q:
    kind: str | None = None
    size_min: int | None = None
    tags: list[str] | None = None
    newest: bool | None = None


FILTERS = Filters[Q](
    equals(t.c.kind, lambda q: q.kind),
    Filter(
        lambda q: q.size_min is not None or None,
        lambda _: t.c.size >= sa.bindparam("size_min"),
        lambda q: {"size_min": q.size_min},
    ),
    Filter(
        lambda q: True if q.tags else None,
        lambda _: t.c.tags.in_(sa.bindparam("tags", expanding=True)),
        lambda q: {"tags": q.tags},
    ),
    Filter(lambda q: q.newest, lambda newest: t.c.size > 10 if newest else t.c.size <= 10),
)


def test_shape_params_and_clauses_follow_the_filters_that_apply() -> None:
    shape, params = FILTERS.query(Q(kind="a", tags=["x", "y"]))
    assert shape == (True, None, True, None)
    assert params == {"kind": "a", "tags": ["x", "y"]}
    where = FILTERS.where(shape)
    assert [str(c) for c in where] == ["t.kind = :kind", "t.tags IN (__[POSTCOMPILE_tags])"]
    assert FILTERS.where(FILTERS.shape(Q(kind="b", tags=["z"]))) is where  # built once per shape
    # a variant key: the same filter, two clauses
    assert [str(c) for c in FILTERS.where(FILTERS.shape(Q(newest=True)))] == ["t.size > :size_1"]
    assert [str(c) for c in FILTERS.where(FILTERS.shape(Q(newest=False)))] == ["t.size <= :size_1"]
    assert FILTERS.query(Q()) == ((None, None, None, None), {})


def test_issue_lists_are_cached_per_shape() -> None:
    staff = Principal("s", frozenset({Role.staff}), ("community:a",))
    other = Principal("t", frozenset({Role.staff}), ("community:b", "community:c"))
    shape_a, params_a = list_query(staff, IssueFilters(category="road"), utcnow())
    shape_b, params_b = list_query(other, IssueFilters(category="water"), utcnow())
    assert shape_a == shape_b and _list_statement(shape_a, False) is _list_statement(shape_b, False)
    assert params_a["v_communities"] == ["a"] and params_b["v_communities"] == ["b", "c"]
    assert (params_a["category"], params_b["category"]) == ("road", "water")
    resident = Principal("r", frozenset({Role.resident}))
    assert list_query(resident, IssueFilters(), sa.func.now())[0] != shape_a  # type: ignore[arg-type]


def test_staff_without_a_scope_see_nothing_and_their_visibility_binds() -> None:
    nobody = Principal("s", frozenset({Role.staff}))
    [clause] = visibility(nobody, IssueFilters())
    assert str(clause.compile(compile_kwargs={"literal_binds": True})) == "false"


def test_where_given_narrows_by_the_filters_given_and_keeps_false_and_zero() -> None:
    flag = sa.column("flag", sa.Boolean())
    query = where_given(sa.select(t.c.kind), (t.c.kind, None), (t.c.size, 0), (t.c.tags, ""), (flag, False))
    where = str(query.compile(compile_kwargs={"literal_binds": True})).split("WHERE", 1)[1]
    assert "t.size = 0" in where
    assert "flag = false" in where
    assert "kind" not in where and "tags" not in where  # absent or empty: no narrowing
    assert where_given(sa.select(t.c.kind), (t.c.kind, None)).whereclause is None
