"""Token buckets (per merchant, per rider, per source address of a sign-in …), in memory, per process.
Callers namespace their keys (``merchant:…``, ``login-ip:…``), so one set of buckets serves every service.

Each process (replica, worker) keeps its own buckets, so the effective limit is the configured rate times the
number of processes; that is enough to stop a runaway till or a script, which is the point. Exceeding a bucket
answers 429 with ``Retry-After`` (seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from minsheng.platform.errors import too_many

MAX_BUCKETS = 50_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, rate: float, burst: int, *, now: float | None = None) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._prune(now, rate, burst)
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate if rate > 0 else 60.0

    def _prune(self, now: float, rate: float, burst: int) -> None:
        """Drop buckets that have refilled (they carry no state worth keeping)."""
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= burst]
        for k in full:
            del self._buckets[k]

    def clear(self) -> None:
        self._buckets.clear()


BUCKETS = TokenBuckets()


def check(key: str, rate: float, burst: int) -> None:
    if rate <= 0:
        return
    wait = BUCKETS.take(key, rate, burst)
    if wait > 0:
        raise too_many("rate_limited", "Too many requests", "Slow down; retry in {seconds} s.", wait=wait)


# For a route's ``responses=``: the OpenAPI document then lists the 429 (with the problem schema and
# Retry-After), which the platform cannot see when the limit is checked inside a dependency or the handler.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests: retry after the number of seconds in Retry-After"}
}
