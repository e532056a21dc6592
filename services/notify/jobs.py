"""Periodic work: the staff's daily digest, retention of delivered messages. Safe in several replicas (the
digest claims its lines with SKIP LOCKED and one message per group and day is unique; plain conditional
deletes)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.service import Job, ServiceRuntime
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.notify import config, state
from services.notify.models import CareContact, Channel, Delivery, DeliveryStatus, DigestItem, DutyShift, Message
from services.notify.rules import rulebook

log = logging.getLogger(__name__)

D = table_of(Delivery)
M = table_of(Message)
C = table_of(CareContact)
DI = table_of(DigestItem)
DR = table_of(DutyShift)
_OPEN = [DeliveryStatus.pending.value, DeliveryStatus.held.value, DeliveryStatus.sending.value]


async def purge_old(runtime: ServiceRuntime, *, batch: int = 1000) -> int:
    """Messages older than the retention whose deliveries are all finished go, with their deliveries.
    Failed and dead deliveries are finished too: after the retention nobody will resend them. Duty shifts
    that ended before the retention go too (with the phones entered for them)."""
    cutoff = utcnow() - timedelta(days=config.get().retention_days)
    purged = 0
    while True:
        async with runtime.uow() as uow:
            open_ = sa.select(D.c.message_id).where(D.c.status.in_(_OPEN))
            ids = [
                i
                for (i,) in await uow.session.execute(
                    sa.select(M.c.id).where(M.c.created_at < cutoff, M.c.id.notin_(open_)).limit(batch)
                )
            ]
            if ids:
                await uow.session.execute(sa.delete(D).where(D.c.message_id.in_(ids)))
                await uow.session.execute(sa.delete(M).where(M.c.id.in_(ids)))
            await uow.session.execute(sa.delete(C).where(C.c.created_at < cutoff))
            await uow.session.execute(sa.delete(DI).where(DI.c.created_at < cutoff))
            await uow.session.execute(sa.delete(DR).where(DR.c.ends_at < cutoff))  # shifts long over, phones too
            await uow.commit()
        purged += len(ids)
        if len(ids) < batch:
            break
    if purged:
        log.info("notify: %d messages past retention deleted", purged)
    return purged


BILL_SCOPE = "resident:"
BILL_RULE = "happiness_bill"
BILL_EVENT_TYPE = "minsheng.notify.bill.monthly"
DIGEST_RULE = "staff_daily_digest"
DIGEST_EVENT_TYPE = "minsheng.notify.digest.daily"
_WECOM_MAX_BYTES = 4096


def digest_markdown(scope: str, day: str, lines: list[tuple[str, str]]) -> str:
    """One duty group's digest: a heading with counts per kind, then the lines (as many as the robot's
    4096-byte markdown limit holds, then how many more)."""
    titles = {r.id: r.text["zh-CN"].title for r in rulebook().rules}  # what a line counts as: its rule's title
    counts = Counter(rule for rule, _ in lines)
    where = "全区" if scope == "*" else scope
    summary = "，".join(f"{titles.get(rule, rule)} {n} 件" for rule, n in sorted(counts.items()))
    head = f"## 每日督办汇总 {day}（{where}）\n{summary}\n"
    body, shown = head, 0
    for _, line in lines:
        more = f"\n... 另有 {len(lines) - shown} 件，请在工作台查看"
        candidate = f"{body}> - {line}\n"
        if len((candidate + more).encode()) > _WECOM_MAX_BYTES:
            return body + more.lstrip("\n")
        body, shown = candidate, shown + 1
    return body


async def send_digests(runtime: ServiceRuntime, *, now: datetime | None = None) -> int:
    try:
        written = await _write_digests(runtime, now or config.now())
    except IntegrityError:  # another replica wrote the same group's digest for today first (SQLite: no locks)
        return 0
    if written:
        log.info("notify: %d daily digests written", written)
        notifier = state.NOTIFIERS.get(runtime.db)
        if notifier is not None:
            notifier.wake()
    return written


async def _write_digests(runtime: ServiceRuntime, now: datetime) -> int:
    """Once a day, after ``digest_time`` (local), each duty group with queued lines gets one WeCom message:
    the issues that went overdue and the needs escalated since its last digest. Built only from what notify
    consumed (``digest_items``), never by asking another service. Returns the number of digests written."""
    s = config.get()
    local = now.astimezone(s.tz)
    cut = datetime.combine(local.date(), s.digest_time, tzinfo=s.tz)
    if local < cut:
        return 0
    day = local.date().isoformat()
    written = 0
    async with runtime.uow() as uow:
        not_bills = ~col(DigestItem.scope).startswith(BILL_SCOPE)
        by_scope = await _unsent_by_scope(uow, DigestItem.occurred_at < cut, not_bills)
        for scope, items in sorted(by_scope.items()):
            key = f"wecom:{scope}"
            done = (
                await uow.session.execute(
                    select(Message.id).where(
                        Message.event_id == f"digest:{day}", Message.rule == DIGEST_RULE, Message.recipient_key == key
                    )
                )
            ).first()
            if done is not None:
                continue  # today's digest for this group went already: these lines wait for tomorrow's
            content = digest_markdown(scope, day, [(i.rule, i.line) for i in items])
            message = Message(
                id=uuid7(),
                account_id=None,
                recipient_key=key,
                event_id=f"digest:{day}",
                event_type=DIGEST_EVENT_TYPE,
                rule=DIGEST_RULE,
                urgent=False,
                title=f"每日督办汇总 {day}",
                body=content,
                locale="zh-CN",
                created_at=utcnow(),
            )
            uow.session.add(message)
            await uow.session.flush()
            at = utcnow()  # ``now`` picks the day; the delivery is due by the clock
            held = s.in_quiet_hours(at)
            uow.session.add(
                Delivery(
                    id=uuid7(),
                    message_id=message.id,
                    recipient_key=key,
                    channel=Channel.wecom.value,
                    status=(DeliveryStatus.held if held else DeliveryStatus.pending).value,
                    urgent=False,
                    next_attempt_at=s.quiet_hours_end(at) if held else at,
                    created_at=at,
                    updated_at=at,
                    address_enc=scope,
                    address_masked=scope,
                    request={"msgtype": "markdown", "content": content},
                )
            )
            for item in items:
                item.digest_message_id = message.id
            written += 1
        await uow.commit()
    return written


async def _digests(runtime: ServiceRuntime) -> int:
    return await send_digests(runtime) + await send_bills(runtime)


def bill_text(month: str, lines: list[str], locale: str) -> tuple[str, str]:
    """A resident's happiness bill (幸福账单): what was done for them last month."""
    if locale == "en":
        return f"Your happiness bill for {month}", (
            f"In {month} the community closed out {len(lines)} of your needs: " + "; ".join(lines) + "."
        )
    return f"{month}幸福账单", f"{month}，社区为您办结{len(lines)}件事：" + "；".join(lines) + "。"


async def send_bills(runtime: ServiceRuntime, *, now: datetime | None = None) -> int:
    """Once a month, after ``digest_time`` on any day of the new month, each resident whose needs were closed
    out last month (``bill`` rules) gets their happiness bill in the inbox of every account linked to them
    (``visits.resident``). Lines of a resident nobody is linked to yet wait (retention drops them). Returns the
    number of messages written."""
    try:
        return await _write_bills(runtime, now or config.now())
    except IntegrityError:  # another replica wrote this month's bills first
        return 0


async def _unsent_by_scope(uow: UnitOfWork, *where: Any) -> dict[str, list[DigestItem]]:
    """The queued lines not yet in a message that match ``where``, oldest first, by scope; on PostgreSQL locked
    (SKIP LOCKED) so that another replica writing at the same time takes other scopes' lines."""
    query = (
        select(DigestItem)
        .where(col(DigestItem.digest_message_id).is_(None), *where)
        .order_by(col(DigestItem.scope), col(DigestItem.occurred_at), col(DigestItem.id))
    )
    if uow.db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    by_scope: dict[str, list[DigestItem]] = defaultdict(list)
    for item in (await uow.session.execute(query)).scalars():
        by_scope[item.scope].append(item)
    return by_scope


async def _write_bills(runtime: ServiceRuntime, now: datetime) -> int:
    from services.notify.audiences import account_target, linked_accounts

    s = config.get()
    local = now.astimezone(s.tz)
    month_start = datetime.combine(local.date().replace(day=1), s.digest_time, tzinfo=s.tz)
    if local < month_start:
        return 0
    previous = (local.date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    written = 0
    async with runtime.uow() as uow:
        bills = col(DigestItem.scope).startswith(BILL_SCOPE)
        by_scope = await _unsent_by_scope(uow, bills, DigestItem.occurred_at < month_start.replace(hour=0, minute=0))
        for scope, items in sorted(by_scope.items()):
            resident_id = scope.removeprefix(BILL_SCOPE)
            accounts = await linked_accounts(uow, "visits.resident", resident_id)
            first: UUID | None = None
            for account_id in accounts:
                target = await account_target(uow, account_id)
                if (
                    await uow.session.execute(
                        select(Message.id).where(
                            Message.event_id == f"bill:{previous}:{resident_id}",
                            Message.rule == BILL_RULE,
                            Message.recipient_key == target.key,
                        )
                    )
                ).first() is not None:
                    continue  # this month's bill went already: late lines wait for next month's
                title, body = bill_text(previous, [i.line for i in items], target.locale)
                at = utcnow()
                message = Message(
                    id=uuid7(),
                    account_id=account_id,
                    recipient_key=target.key,
                    event_id=f"bill:{previous}:{resident_id}",
                    event_type=BILL_EVENT_TYPE,
                    rule=BILL_RULE,
                    urgent=False,
                    title=title[:200],
                    body=body,
                    locale=target.locale,
                    link="pages/visits/bill",
                    subject_ref=f"bill:{previous}",
                    created_at=at,
                )
                uow.session.add(message)
                await uow.session.flush()
                uow.session.add(
                    Delivery(
                        id=uuid7(),
                        message_id=message.id,
                        recipient_key=target.key,
                        channel=Channel.inbox.value,
                        status=DeliveryStatus.sent.value,
                        urgent=False,
                        next_attempt_at=at,
                        sent_at=at,
                        created_at=at,
                        updated_at=at,
                    )
                )
                first = first or message.id
                written += 1
            if first is not None:
                for item in items:
                    item.digest_message_id = first
        await uow.commit()
    if written:
        log.info("notify: %d happiness bills written", written)
    return written


JOBS = (
    Job("purge-delivered-messages", 3600, purge_old),
    Job("staff-daily-digest", config.get().digest_check_seconds, _digests),
)
