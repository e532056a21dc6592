"""Keyset pagination: the cursor round-trips every kind a list sorts on, and a page request is validated."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from minsheng.platform.errors import Problem
from minsheng.platform.inputs import text
from minsheng.platform.pagination import MAX_LIMIT, Page, PageRequest, decode_cursor, encode_cursor


def test_a_cursor_carries_dates_times_ids_numbers_and_text_back_as_they_were() -> None:
    values = (date(2026, 12, 7), datetime(2026, 12, 7, 8, 30, tzinfo=UTC), UUID(int=7), 3, "yunxing")
    assert decode_cursor(encode_cursor(*values), date, datetime, UUID, int, str) == values


def test_a_cursor_read_as_another_kind_is_an_invalid_cursor() -> None:
    with pytest.raises(Problem) as refused:
        decode_cursor(encode_cursor("yunxing", UUID(int=7)), date, UUID)
    assert refused.value.code == "invalid_cursor"


def test_a_page_keeps_its_cursor_whether_its_items_are_converted_one_by_one_or_all_at_once() -> None:
    class Shown(BaseModel):
        n: int

    rows = Page[int](items=[1, 2], next_cursor=encode_cursor(2))
    one_by_one = rows.map(lambda n: Shown(n=n))
    at_once = rows.with_items([Shown(n=n) for n in rows.items])
    expected = Page[Shown](items=[Shown(n=1), Shown(n=2)], next_cursor=rows.next_cursor)
    assert one_by_one.model_dump_json() == at_once.model_dump_json() == expected.model_dump_json()


def test_a_page_request_bounds_its_limit() -> None:
    assert PageRequest().limit == 50 and PageRequest().cursor is None
    for limit in (0, MAX_LIMIT + 1):
        with pytest.raises(ValidationError):
            PageRequest(limit=limit)


def test_an_optional_bounded_text_filter_takes_none_and_refuses_a_nul_byte() -> None:
    class Filters(BaseModel):
        community: Annotated[str | None, text(40)] = None

    assert Filters(community=None).community is None
    with pytest.raises(ValidationError):
        Filters(community="a\x00b")


@pytest.mark.parametrize("descending", [(True, False, False), (False, True, False), (True, True, True), False])
def test_a_keyset_walks_a_list_with_ties_in_its_order_whatever_each_column_s_direction(
    descending: bool | tuple[bool, ...],
) -> None:
    import random

    import sqlalchemy as sa

    from minsheng.platform.pagination import Keyset

    rows = sa.table("rows", sa.column("level", sa.Integer), sa.column("name", sa.String), sa.column("id", sa.Integer))
    engine = sa.create_engine("sqlite://")
    rng = random.Random(7)
    data: list[dict[str, Any]] = [{"level": rng.randint(0, 3), "name": rng.choice("abc"), "id": n} for n in range(60)]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE rows (level INTEGER, name TEXT, id INTEGER PRIMARY KEY)"))
        conn.execute(rows.insert(), data)
    keyset = Keyset((rows.c.level, rows.c.name, rows.c.id), kinds=(int, str, int), descending=descending)
    directions = descending if isinstance(descending, tuple) else (descending,) * 3
    expected = [r["id"] for r in data]
    for position in (2, 1, 0):  # a stable sort, last key first
        expected.sort(key=lambda i: data[i][("level", "name", "id")[position]], reverse=directions[position])

    walked: list[int] = []
    page = PageRequest(limit=7)
    with engine.connect() as conn:
        while True:
            found = keyset.page(list(conn.execute(keyset.query(sa.select(rows), page))), page)
            walked += [r.id for r in found.items]
            if found.next_cursor is None:
                break
            page = PageRequest(limit=7, cursor=found.next_cursor)
    assert walked == expected
