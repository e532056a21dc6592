"""Backoff with jitter for every retry loop (the outbox relay, the event consumer, the Kafka transport).

Without jitter, every replica that saw the same outage retries at the same instants (0.1 s, 0.2 s, 0.4 s …)
and they hit the returning broker or database in lock-step. "Full jitter" draws each delay uniformly from
``[0, min(cap, base · 2^attempt)]``: the expected delay halves, and the retries of many replicas spread over
the whole window (see the AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_random = random.SystemRandom()


def full_jitter(base: float, cap: float, attempt: int, *, rng: random.Random | None = None) -> float:
    """A delay for retry number ``attempt`` (0 for the first retry): uniform in ``[0, min(cap, base·2^attempt)]``."""
    if base <= 0 or cap <= 0:
        return 0.0
    ceiling = min(cap, base * 2 ** min(max(attempt, 0), 62))
    return (rng or _random).uniform(0.0, ceiling)


@dataclass
class Backoff:
    """The state of one retry loop: ``next_delay()`` after a failure, ``reset()`` after a success."""

    base: float
    cap: float
    attempt: int = 0
    rng: random.Random | None = field(default=None, repr=False)

    def next_delay(self) -> float:
        delay = full_jitter(self.base, self.cap, self.attempt, rng=self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
