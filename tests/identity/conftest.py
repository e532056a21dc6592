"""Fixtures for the identity service's tests: the whole system (tokens must work in all five services), cheap
argon2 parameters (the real ones are measured in the bench), fresh rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from minsheng.platform import ratelimit
from services.identity import config


@pytest.fixture(autouse=True)
def identity_test_settings() -> Iterator[None]:
    ratelimit.BUCKETS.clear()
    with config.override(argon2_time_cost=1, argon2_memory_kib=1024, signin_rate_per_second=1000.0, signin_burst=1000):
        yield
    ratelimit.BUCKETS.clear()
