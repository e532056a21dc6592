"""Keyset pagination: the cursor round-trips every kind a list sorts on, and a page request is validated."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from minsheng.platform.errors import Problem
from minsheng.platform.inputs import text
from minsheng.platform.pagination import MAX_LIMIT, PageRequest, decode_cursor, encode_cursor


def test_a_cursor_carries_dates_times_ids_numbers_and_text_back_as_they_were() -> None:
    values = (date(2026, 12, 7), datetime(2026, 12, 7, 8, 30, tzinfo=UTC), UUID(int=7), 3, "yunxing")
    assert decode_cursor(encode_cursor(*values), date, datetime, UUID, int, str) == values


def test_a_cursor_read_as_another_kind_is_an_invalid_cursor() -> None:
    with pytest.raises(Problem) as refused:
        decode_cursor(encode_cursor("yunxing", UUID(int=7)), date, UUID)
    assert refused.value.code == "invalid_cursor"


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
