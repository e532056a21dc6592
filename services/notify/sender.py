"""The sender: a loop that claims due deliveries (``delivery_queue``), sends them through the channel adapters
and records what happened (``outcomes``) — woken by the commits that write deliveries, and at least once per
poll interval for retries and held rows. Each channel has a token bucket per process: a round claims no more
than it may send.

At-least-once towards the provider: a crash between the provider's accept and the record leaves the row
leased, and it is sent again after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from minsheng.platform.db import Database
from minsheng.platform.ids import utcnow
from minsheng.platform.tasks import cancel_all, within
from services.notify import config, delivery_queue, outcomes
from services.notify.channels import ChannelAdapter
from services.notify.metrics import SenderStats
from services.notify.standin import RunningStandin

log = logging.getLogger(__name__)


class Buckets:
    def __init__(self, rates: dict[str, float], bursts: dict[str, int]) -> None:
        self.rates, self.bursts = rates, bursts
        now = time.monotonic()
        self._tokens = {ch: float(bursts.get(ch, 100)) for ch in rates}
        self._at = {ch: now for ch in rates}

    def available(self, channel: str) -> int:
        if channel not in self.rates:
            return 10_000
        now = time.monotonic()
        burst = float(self.bursts.get(channel, 100))
        self._tokens[channel] = min(burst, self._tokens[channel] + (now - self._at[channel]) * self.rates[channel])
        self._at[channel] = now
        return int(self._tokens[channel])

    def take(self, channel: str, n: int) -> None:
        if channel in self._tokens:
            self._tokens[channel] -= n


class Notifier:
    def __init__(
        self,
        db: Database,
        adapters: dict[str, ChannelAdapter],
        *,
        standin: RunningStandin | None = None,
        name: str = "sender",
    ) -> None:
        self.db = db
        self.adapters = adapters
        self.standin = standin
        self.name = name
        s = config.get()
        self.buckets = Buckets(s.rate_per_second, s.burst)
        self.stats = SenderStats()
        self._wake = asyncio.Event()
        self._woken_for: set[str] = set()  # channels a fan-out has just written deliveries for
        self._saturated = False  # the last round claimed a whole batch somewhere: more may be due
        self._task: asyncio.Task[None] | None = None
        self._last_snapshot = 0.0

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def wake(self, channels: Iterable[str] = ()) -> None:
        """Send now. ``channels``: the ones a commit just wrote deliveries for (the next round looks at those
        without first asking the database which channels have something due)."""
        self._woken_for.update(channels)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"notify-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
            self._task = None

    async def _loop(self) -> None:
        last_full = 0.0
        while True:
            try:
                hinted, self._woken_for = self._woken_for, set()
                if hinted and time.monotonic() - last_full < config.get().sender_poll_seconds:
                    busy = await self.run_once(sorted(hinted))
                else:  # a full look at every channel at least once per poll interval (retries, held rows)
                    last_full = time.monotonic()
                    busy = await self.run_once()
                if time.monotonic() - self._last_snapshot > 5:
                    await self.snapshot()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notify: sender round failed")
                busy = 0
            if busy and self._saturated:
                continue  # commits made meanwhile have set the wake-up; so has a fallback's insert
            with contextlib.suppress(TimeoutError):
                await within(config.get().sender_poll_seconds, self._wake.wait())
            self._wake.clear()

    # --- one round -----------------------------------------------------------------------------------------
    async def run_once(self, channels: Iterable[str] | None = None) -> int:
        """Claim, send and record what is due on every channel; the number of deliveries handled."""
        handled = 0
        self._saturated = False
        in_flight = asyncio.Semaphore(config.get().sender_concurrency)
        for channel in channels or await delivery_queue.due_channels(self.db):
            adapter = self.adapters.get(channel)
            if adapter is None:
                await delivery_queue.hold_unconfigured(self.db, channel)
                continue
            allowed = min(config.get().sender_batch, self.buckets.available(channel))
            if allowed <= 0:
                continue
            lease = utcnow() + timedelta(seconds=config.get().lease_seconds)
            rows = await delivery_queue.claim(self.db, channel, allowed, lease)
            if not rows:
                continue
            self.buckets.take(channel, len(rows))
            self._saturated |= len(rows) == allowed
            ready = await outcomes.spend_subscriptions(self.db, channel, rows)
            results = await asyncio.gather(
                *(
                    outcomes.send(self.db, adapter, row, in_flight) if ok else outcomes.no_subscription()
                    for row, ok in zip(rows, ready, strict=True)
                )
            )
            if await outcomes.record(self.db, rows, ready, results, lease, self.stats):
                self.wake()  # fallback deliveries were written
            handled += len(rows)
        return handled

    # --- what the queue looks like (metrics) ---------------------------------------------------------------------
    async def snapshot(self) -> SenderStats:
        self._last_snapshot = time.monotonic()
        self.stats.queue, self.stats.oldest_due_age = await delivery_queue.queue_state(self.db)
        return self.stats
