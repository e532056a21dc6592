"""A provider call and what is recorded of it.

- **Send** outside any transaction (a provider call must not hold a lock or a connection).
- **Record** each result only if the row is still ours (same lease): sent; transient → back off
  exponentially with jitter (dead after ``max_attempts``); throttled → wait, not counted as an attempt;
  permanent → failed with the reason, and for rules that fall back, an SMS delivery for the same message.
- WeChat one-time subscriptions: a send spends one credit (``credits - 1 WHERE credits > 0``) before the
  call and gives it back if the provider did not take the message; no credit → failed ``no_subscription``.

Logs name deliveries and error codes, never bodies or addresses.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.privacy import FieldCipher, cipher_for
from minsheng.platform.sql import table_of
from services.notify import config
from services.notify.channels import ChannelAdapter, Outcome
from services.notify.messages import decrypt_address
from services.notify.metrics import SenderStats
from services.notify.models import Delivery, DeliveryStatus, Subscription
from services.notify.sealing import seal_address

log = logging.getLogger(__name__)

D = table_of(Delivery)
S = table_of(Subscription)


def backoff(attempts: int, s: config.NotifySettings) -> float:
    """Exponential with jitter: base·2^(n-1), capped, times a random factor in [0.5, 1.5)."""
    return min(s.retry_max_seconds, s.retry_base_seconds * 2 ** max(0, attempts - 1)) * (0.5 + random.random())


async def spend_subscriptions(db: Database, channel: str, rows: Sequence[sa.Row[Any]]) -> list[bool]:
    """For each claimed row, whether it may be sent: on WeChat, whether a subscription credit was spent for it."""
    if channel != "wechat":
        return [True] * len(rows)
    ready = []
    async with db.sessionmaker() as session:
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


async def send(db: Database, adapter: ChannelAdapter, row: sa.Row[Any], in_flight: asyncio.Semaphore) -> Outcome:
    """One provider call, at most ``in_flight`` at a time."""
    async with in_flight:
        return await _send_one(db, adapter, row)


async def _send_one(db: Database, adapter: ChannelAdapter, row: sa.Row[Any]) -> Outcome:
    try:
        address = decrypt_address(cipher_for(db), row.channel, row.address_enc, row.id)
        if not address:
            return Outcome("permanent", "no address")
        request = dict(row.request)
        request.setdefault("session", str(row.id))
        return await adapter.send(address, request)
    except Exception as exc:  # an adapter bug must not lose the row: retry it
        log.warning("notify: delivery %s (%s) raised %s", row.id, row.channel, type(exc).__name__)
        return Outcome("transient", type(exc).__name__)


async def no_subscription() -> Outcome:
    """The outcome of a WeChat delivery no subscription credit was left for (no provider call)."""
    return Outcome("permanent", "no_subscription", no_subscription=True)


async def record(
    db: Database,
    rows: Sequence[sa.Row[Any]],
    spent: list[bool],
    outcomes: Sequence[Outcome],
    lease: datetime,
    stats: SenderStats,
) -> bool:
    """Record the round's outcomes (counted in ``stats``) where the rows are still ours; whether fallback
    deliveries were written (the sender should then look again at once)."""
    s = config.get()
    now = utcnow()
    fallbacks: list[dict[str, Any]] = []
    accepted = {r.id: o.provider_ref for r, o in zip(rows, outcomes, strict=True) if o.kind == "ok"}
    async with db.sessionmaker() as session:
        if accepted:  # the common case, one statement for the whole round
            await _record_sent(session, accepted, lease, now)
        for row, had_credit, outcome in zip(rows, spent, outcomes, strict=True):
            stats.outcomes[(row.channel, outcome.kind)] += 1
            if outcome.kind == "ok":
                stats.latencies.append((now - as_utc(row.created_at)).total_seconds())
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
                    fallbacks.append(_fallback_row(cipher_for(db), row, fallback, now))
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
            insert = pg_insert(D) if db.is_postgres else sqlite_insert(D)
            await session.execute(
                insert.values(fallbacks).on_conflict_do_nothing(index_elements=["message_id", "channel"])
            )
        await session.commit()
    return bool(fallbacks)


def _fallback_row(fc: FieldCipher, row: sa.Row[Any], fallback: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The SMS delivery of a message whose WeChat delivery failed for good (its phone, sealed in flight in the
    WeChat delivery's request, bound to the new row)."""
    delivery_id = uuid7()
    return {
        "id": delivery_id,
        "message_id": row.message_id,
        "recipient_key": row.recipient_key,
        "channel": "sms",
        "status": DeliveryStatus.pending.value,
        "urgent": row.urgent,
        "attempts": 0,
        "next_attempt_at": now,
        "address_enc": seal_address(fc, delivery_id, fallback["address_enc"]),
        "address_masked": fallback.get("address_masked"),
        "request": fallback["request"],
        "fallback_of": row.id,
        "created_at": now,
        "updated_at": now,
    }


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
