"""The sender: claims due deliveries, sends them through the channel adapters, records what happened.

- **Claim**: ``UPDATE deliveries SET status='sending', lease_until=…, attempts=attempts+1 WHERE id IN (SELECT …
  FOR UPDATE SKIP LOCKED)`` on PostgreSQL, so replicas share the work and never take the same row; a row
  whose sender died is taken again once its lease has run out. Non-urgent rows are not claimed during quiet
  hours. Each channel has a token bucket per process: a round claims no more than it may send.
- **Send** outside any transaction (a provider call must not hold a lock or a connection).
- **Record** each result only if the row is still ours (same lease): sent; transient → back off
  exponentially with jitter (dead after ``max_attempts``); throttled → wait, not counted as an attempt;
  permanent → failed with the reason, and for rules that fall back, an SMS delivery for the same message.
- WeChat one-time subscriptions: a send spends one credit (``credits - 1 WHERE credits > 0``) before the
  call and gives it back if the provider did not take the message; no credit → failed ``no_subscription``.

At-least-once towards the provider: a crash between the provider's accept and the record leaves the row
leased, and it is sent again after the lease. Logs name deliveries and error codes, never bodies or addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.sql import table_of
from minsheng.platform.tasks import cancel_all, within
from services.notify import config, state
from services.notify.channels import ChannelAdapter, Outcome, TencentSms, WeChatSubscribe, WeComRobot
from services.notify.models import SENT_CHANNELS, Delivery, DeliveryStatus, Subscription
from services.notify.service import decrypt_address
from services.notify.standin import (
    STANDIN_APPID,
    STANDIN_SECRET,
    STANDIN_SMS_APP,
    STANDIN_SMS_ID,
    STANDIN_SMS_KEY,
    RunningStandin,
    serve_standin,
)

log = logging.getLogger(__name__)

D = table_of(Delivery)
S = table_of(Subscription)
_RETURNED = (
    D.c.id,
    D.c.message_id,
    D.c.channel,
    D.c.address_enc,
    D.c.request,
    D.c.attempts,
    D.c.urgent,
    D.c.created_at,
    D.c.recipient_key,
)


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


@dataclass
class SenderStats:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, outcome) → count
    queue: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) → rows
    oldest_due_age: dict[str, float] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))  # created → accepted, s


def backoff(attempts: int, s: config.NotifySettings) -> float:
    """Exponential with jitter: base·2^(n-1), capped, times a random factor in [0.5, 1.5)."""
    return min(s.retry_max_seconds, s.retry_base_seconds * 2 ** max(0, attempts - 1)) * (0.5 + random.random())


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
        for channel in channels or await self._due_channels():
            adapter = self.adapters.get(channel)
            if adapter is None:
                await self._hold_unconfigured(channel)
                continue
            allowed = min(config.get().sender_batch, self.buckets.available(channel))
            if allowed <= 0:
                continue
            lease = utcnow() + timedelta(seconds=config.get().lease_seconds)
            rows = await self._claim(channel, allowed, lease)
            if not rows:
                continue
            self.buckets.take(channel, len(rows))
            self._saturated |= len(rows) == allowed
            ready = await self._spend_subscriptions(channel, rows)
            outcomes = await asyncio.gather(
                *(
                    self._send(adapter, row, in_flight) if ok else _no_subscription()
                    for row, ok in zip(rows, ready, strict=True)
                )
            )
            await self._record(rows, ready, outcomes, lease)
            handled += len(rows)
        return handled

    async def _due_channels(self) -> list[str]:
        """The channels with something to send now: one read, so an idle or one-channel round takes no write
        lock for the others (SQLite has one writer at a time)."""
        now = utcnow()
        query = sa.select(D.c.channel).where(D.c.channel.in_([c.value for c in SENT_CHANNELS]), _due(now))
        if config.get().in_quiet_hours(now):
            query = query.where(D.c.urgent.is_(True))
        async with self.db.read_sessionmaker() as session:
            return sorted({c for (c,) in await session.execute(query.distinct())})

    async def _claim(self, channel: str, limit: int, lease: datetime) -> Sequence[sa.Row[Any]]:
        now = utcnow()
        pick = sa.select(D.c.id).where(D.c.channel == channel, _due(now))
        if config.get().in_quiet_hours(now):
            pick = pick.where(D.c.urgent.is_(True))
        pick = pick.order_by(D.c.urgent.desc(), D.c.next_attempt_at).limit(limit)
        if self.db.is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            sa.update(D)
            .where(D.c.id.in_(pick.scalar_subquery()))
            .values(status=DeliveryStatus.sending.value, lease_until=lease, attempts=D.c.attempts + 1, updated_at=now)
            .returning(*_RETURNED)
        )
        async with self.db.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
            await session.commit()
        return rows

    async def _spend_subscriptions(self, channel: str, rows: Sequence[sa.Row[Any]]) -> list[bool]:
        if channel != "wechat":
            return [True] * len(rows)
        ready = []
        async with self.db.sessionmaker() as session:
            for row in rows:
                spent = await session.execute(
                    sa.update(S)
                    .where(
                        S.c.account_id == row.request.get("account_id"),
                        S.c.template_id == row.request.get("template_id"),
                        S.c.credits > 0,
                    )
                    .values(credits=S.c.credits - 1, updated_at=utcnow())
                )
                ready.append(bool(spent.rowcount))  # type: ignore[attr-defined]
            await session.commit()
        return ready

    async def _send(self, adapter: ChannelAdapter, row: sa.Row[Any], in_flight: asyncio.Semaphore) -> Outcome:
        async with in_flight:
            return await self._send_one(adapter, row)

    async def _send_one(self, adapter: ChannelAdapter, row: sa.Row[Any]) -> Outcome:
        try:
            address = decrypt_address(state.cipher_for(self.db), row.channel, row.address_enc)
            if not address:
                return Outcome("permanent", "no address")
            request = dict(row.request)
            request.setdefault("session", str(row.id))
            return await adapter.send(address, request)
        except Exception as exc:  # an adapter bug must not lose the row: retry it
            log.warning("notify: delivery %s (%s) raised %s", row.id, row.channel, type(exc).__name__)
            return Outcome("transient", type(exc).__name__)

    async def _record(
        self, rows: Sequence[sa.Row[Any]], spent: list[bool], outcomes: Sequence[Outcome], lease: datetime
    ) -> None:
        s = config.get()
        now = utcnow()
        fallbacks: list[dict[str, Any]] = []
        accepted = {r.id: o.provider_ref for r, o in zip(rows, outcomes, strict=True) if o.kind == "ok"}
        async with self.db.sessionmaker() as session:
            if accepted:  # the common case, one statement for the whole round
                await self._record_sent(session, accepted, lease, now)
            for row, had_credit, outcome in zip(rows, spent, outcomes, strict=True):
                self.stats.outcomes[(row.channel, outcome.kind)] += 1
                if outcome.kind == "ok":
                    self.stats.latencies.append((now - as_utc(row.created_at)).total_seconds())
                    continue
                ours = sa.and_(D.c.id == row.id, D.c.status == DeliveryStatus.sending.value, D.c.lease_until == lease)
                values: dict[str, Any] = {"updated_at": now, "lease_until": None}
                if outcome.kind == "throttled":
                    wait = outcome.retry_after or s.throttle_wait_seconds
                    values.update(
                        status=DeliveryStatus.held.value,
                        attempts=D.c.attempts - 1,
                        next_attempt_at=now + timedelta(seconds=wait * (0.8 + 0.4 * random.random())),
                        error_class="throttled",
                        last_error=outcome.error,
                    )
                elif outcome.kind == "transient":
                    dead = row.attempts >= s.max_attempts
                    values.update(
                        status=DeliveryStatus.dead.value if dead else DeliveryStatus.pending.value,
                        next_attempt_at=now + timedelta(seconds=backoff(row.attempts, s)),
                        error_class="exhausted" if dead else "transient",
                        last_error=outcome.error,
                    )
                else:
                    values.update(
                        status=DeliveryStatus.failed.value,
                        error_class="permanent",
                        last_error=(outcome.error or "")[:300],
                    )
                    fallback = row.request.get("fallback")
                    if fallback and row.channel == "wechat":
                        fallbacks.append(
                            {
                                "id": uuid7(),
                                "message_id": row.message_id,
                                "recipient_key": row.recipient_key,
                                "channel": "sms",
                                "status": DeliveryStatus.pending.value,
                                "urgent": row.urgent,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "address_enc": fallback["address_enc"],
                                "address_masked": fallback.get("address_masked"),
                                "request": fallback["request"],
                                "fallback_of": row.id,
                                "created_at": now,
                                "updated_at": now,
                            }
                        )
                result = await session.execute(sa.update(D).where(ours).values(**values))
                if not result.rowcount:  # type: ignore[attr-defined]
                    log.warning("notify: delivery %s was taken over before its result was recorded", row.id)
                if row.channel == "wechat" and had_credit and not outcome.no_subscription:
                    await session.execute(
                        sa.update(S)
                        .where(
                            S.c.account_id == row.request.get("account_id"),
                            S.c.template_id == row.request.get("template_id"),
                        )
                        .values(credits=S.c.credits + 1)
                    )
                log.info("notify: delivery %s via %s: %s (%s)", row.id, row.channel, outcome.kind, outcome.error)
            if fallbacks:
                insert = pg_insert(D) if self.db.is_postgres else sqlite_insert(D)
                await session.execute(
                    insert.values(fallbacks).on_conflict_do_nothing(index_elements=["message_id", "channel"])
                )
            await session.commit()
        if fallbacks:
            self.wake()

    @staticmethod
    async def _record_sent(session: AsyncSession, refs: dict[UUID, str | None], lease: datetime, now: datetime) -> None:
        """Mark the deliveries the provider accepted as sent, each with its provider reference: one UPDATE
        (``provider_ref = CASE id WHEN … END``), only where the row is still ours (same lease)."""
        ref = sa.case({i: sa.literal(r, sa.String) for i, r in refs.items()}, value=D.c.id, else_=D.c.provider_ref)
        result = await session.execute(
            sa.update(D)
            .where(D.c.id.in_(list(refs)), D.c.status == DeliveryStatus.sending.value, D.c.lease_until == lease)
            .values(
                status=DeliveryStatus.sent.value,
                sent_at=now,
                provider_ref=ref,
                error_class=None,
                last_error=None,
                lease_until=None,
                updated_at=now,
            )
            .returning(D.c.id)
        )
        for lost in set(refs) - {i for (i,) in result}:
            log.warning("notify: delivery %s was taken over before its result was recorded", lost)

    async def _hold_unconfigured(self, channel: str) -> None:
        now = utcnow()
        async with self.db.sessionmaker() as session:
            await session.execute(
                sa.update(D)
                .where(D.c.channel == channel, D.c.status == DeliveryStatus.pending.value, D.c.next_attempt_at <= now)
                .values(
                    status=DeliveryStatus.held.value,
                    error_class="unconfigured",
                    last_error="channel_not_configured",
                    next_attempt_at=now + timedelta(seconds=60),
                )
            )
            await session.commit()

    # --- what the queue looks like (metrics) ---------------------------------------------------------------------
    async def snapshot(self) -> SenderStats:
        self._last_snapshot = time.monotonic()
        now = utcnow()
        async with self.db.sessionmaker() as session:
            counts = await session.execute(
                sa.select(D.c.channel, D.c.status, sa.func.count())
                .where(D.c.status.notin_([DeliveryStatus.sent.value]))
                .group_by(D.c.channel, D.c.status)
            )
            self.stats.queue = {(c, st): n for c, st, n in counts}
            oldest = await session.execute(
                sa.select(D.c.channel, sa.func.min(D.c.next_attempt_at))
                .where(
                    D.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.held.value]),
                    D.c.next_attempt_at <= now,
                )
                .group_by(D.c.channel)
            )
            self.stats.oldest_due_age = {c: (now - as_utc(t)).total_seconds() for c, t in oldest if t is not None}
        return self.stats


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(D.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.held.value]), D.c.next_attempt_at <= now),
        sa.and_(D.c.status == DeliveryStatus.sending.value, D.c.lease_until < now),
    )


async def _no_subscription() -> Outcome:
    return Outcome("permanent", "no_subscription", no_subscription=True)


def build_adapters(client: httpx.AsyncClient, standin: RunningStandin | None) -> dict[str, ChannelAdapter]:
    s = config.get()
    adapters: dict[str, ChannelAdapter] = {}
    if standin is not None:
        base = standin.base_url
        adapters["wechat"] = WeChatSubscribe(
            client, f"{base}/wechat", STANDIN_APPID, STANDIN_SECRET, s.miniprogram_state
        )
        adapters["sms"] = TencentSms(
            client, f"{base}/sms", STANDIN_SMS_ID, STANDIN_SMS_KEY, STANDIN_SMS_APP, s.sms_sign_name, s.sms_region
        )
        keys = {k: v.get_secret_value() for k, v in s.wecom_robot_keys.items()} or {"*": "standin-duty-robot"}
        adapters["wecom"] = WeComRobot(client, f"{base}/wecom", keys)
        return adapters
    if s.wechat_appid and s.wechat_secret is not None:
        adapters["wechat"] = WeChatSubscribe(
            client, s.wechat_base_url, s.wechat_appid, s.wechat_secret.get_secret_value(), s.miniprogram_state
        )
    if s.sms_secret_id and s.sms_secret_key is not None and s.sms_app_id:
        adapters["sms"] = TencentSms(
            client,
            s.sms_base_url,
            s.sms_secret_id,
            s.sms_secret_key.get_secret_value(),
            s.sms_app_id,
            s.sms_sign_name,
            s.sms_region,
        )
    if s.wecom_robot_keys:
        adapters["wecom"] = WeComRobot(
            client, s.wecom_base_url, {k: v.get_secret_value() for k, v in s.wecom_robot_keys.items()}
        )
    missing = sorted({"wechat", "sms", "wecom"} - set(adapters))
    if missing:
        log.warning(
            "notify: no credentials for %s: those deliveries are held (channel_not_configured)", ", ".join(missing)
        )
    return adapters


@contextlib.asynccontextmanager
async def lifespan(runtime: ServiceRuntime) -> AsyncIterator[None]:
    """The notify service's own resources: an HTTP client, the stand-in (embedded mode, or when enabled),
    the adapters and the sender loop (when this process runs background work)."""
    state.register(runtime.db, runtime.settings)
    s = config.get()
    async with contextlib.AsyncExitStack() as stack:
        client = httpx.AsyncClient(
            timeout=s.http_timeout_seconds,
            limits=httpx.Limits(
                max_connections=s.sender_concurrency + 4,  # and a few for access-token refreshes
                max_keepalive_connections=s.sender_concurrency + 4,
            ),
        )
        stack.push_async_callback(client.aclose)
        standin = None
        if s.use_standin(runtime.settings.mode):
            if runtime.settings.mode != "embedded":
                log.warning("notify: provider stand-ins enabled in distributed mode (MINSHENG_NOTIFY_STANDIN)")
            standin = await stack.enter_async_context(serve_standin(s.standin_host, s.standin_port))
        notifier = Notifier(runtime.db, build_adapters(client, standin), standin=standin)
        state.NOTIFIERS[runtime.db] = notifier
        if runtime.jobs_enabled:
            notifier.start()
        try:
            yield
        finally:
            await notifier.stop()
            state.NOTIFIERS.pop(runtime.db, None)


class NotifyCollector(Collector):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        notifier = state.NOTIFIERS.get(self.runtime.db)
        outcomes = CounterMetricFamily(
            "minsheng_notify_send_outcomes",
            "Provider calls by channel and outcome (ok, transient, throttled, permanent).",
            labels=["channel", "outcome"],
        )
        queue = GaugeMetricFamily(
            "minsheng_notify_deliveries",
            "Deliveries not yet sent, by channel and status (pending, held, sending, failed, dead, skipped).",
            labels=["channel", "status"],
        )
        age = GaugeMetricFamily(
            "minsheng_notify_oldest_due_age_seconds",
            "How long the oldest due delivery has waited, by channel.",
            labels=["channel"],
        )
        if notifier is not None:
            for (channel, outcome), n in notifier.stats.outcomes.items():
                outcomes.add_metric([channel, outcome], n)
            for (channel, status), n in notifier.stats.queue.items():
                queue.add_metric([channel, status], n)
            for channel, seconds in notifier.stats.oldest_due_age.items():
                age.add_metric([channel], seconds)
        yield from (outcomes, queue, age)


def metrics(runtime: ServiceRuntime) -> NotifyCollector:
    return NotifyCollector(runtime)


async def resend(db: Database, ids: Sequence[UUID] | None = None) -> int:
    """Make failed and dead deliveries due again (all of them, or the given ones). The CLI's ``resend``."""
    now = utcnow()
    query = sa.update(D).where(D.c.status.in_([DeliveryStatus.failed.value, DeliveryStatus.dead.value]))
    if ids:
        query = query.where(D.c.id.in_(list(ids)))
    async with db.sessionmaker() as session:
        result = await session.execute(
            query.values(
                status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now, error_class=None, updated_at=now
            )
        )
        await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
