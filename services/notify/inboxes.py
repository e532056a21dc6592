"""What a signed-in person sees of notify: their inbox, the WeChat one-time subscriptions their mini-program
recorded, and their preferences. Each function takes a unit of work and never commits."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from minsheng.platform.errors import not_found
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import Keyset, PageRequest, keyset_page
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.notify.models import (
    InboxPage,
    Message,
    MessagePublic,
    Preference,
    PreferencePublic,
    Subscription,
    SubscriptionPublic,
)
from services.notify.rules import rulebook

_SUBS = table_of(Subscription)
_NEWEST_FIRST = Keyset((Message.id,), kinds=(UUID,))
ACCEPTED = ("accept", "acceptWithAudio")


async def inbox_page(uow: UnitOfWork, account_id: str, page: PageRequest, *, unread_only: bool) -> InboxPage:
    query = select(Message).where(Message.account_id == account_id)
    if unread_only:
        query = query.where(col(Message.read_at).is_(None))
    messages = await keyset_page(uow.session, query, _NEWEST_FIRST, page)
    items = [MessagePublic.model_validate(m, from_attributes=True) for m in messages.items]
    return InboxPage(items=items, next_cursor=messages.next_cursor, unread=await unread(uow, account_id))


async def unread(uow: UnitOfWork, account_id: str) -> int:
    count = sa.select(sa.func.count()).select_from(Message)
    query = count.where(col(Message.account_id) == account_id, col(Message.read_at).is_(None))
    return int((await uow.session.execute(query)).scalar_one())


async def mark_read(uow: UnitOfWork, account_id: str, ids: list[UUID] | None) -> int:
    """The given messages of ``account_id`` (all of them when ``ids`` is None) marked read; how many were unread."""
    query = sa.update(Message).where(col(Message.account_id) == account_id, col(Message.read_at).is_(None))
    if ids is not None:
        query = query.where(col(Message.id).in_(ids))
    result = await uow.session.execute(query.values(read_at=utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_one_read(uow: UnitOfWork, account_id: str, message_id: UUID) -> MessagePublic:
    message = await uow.session.get(Message, message_id)
    if message is None or message.account_id != account_id:  # someone else's message does not exist for you
        raise not_found("message", message_id)
    if message.read_at is None:
        message.read_at = utcnow()
    return MessagePublic.model_validate(message, from_attributes=True)


async def record_subscriptions(uow: UnitOfWork, account_id: str, results: dict[str, str]) -> None:
    """What the user answered in ``wx.requestSubscribeMessage``: one send credit per accepted template."""
    known = {r.wechat.template_id for r in rulebook().rules if r.wechat is not None}
    for template_id, answer in sorted(results.items()):
        if template_id == "errMsg" or answer not in ACCEPTED or template_id not in known:
            continue  # reject / ban / filter, or a template no rule uses: nothing to record
        # One statement (INSERT … ON CONFLICT DO UPDATE): two taps recorded at once both count.
        insert = pg_insert(_SUBS) if uow.db.is_postgres else sqlite_insert(_SUBS)
        await uow.session.execute(
            insert.values(
                id=uuid7(), account_id=account_id, template_id=template_id, credits=1, updated_at=utcnow()
            ).on_conflict_do_update(
                index_elements=["account_id", "template_id"],
                set_={"credits": _SUBS.c.credits + 1, "updated_at": utcnow()},
            )
        )


async def subscriptions_of(uow: UnitOfWork, account_id: str) -> list[SubscriptionPublic]:
    query = select(Subscription).where(Subscription.account_id == account_id)
    rows = (await uow.session.execute(query.order_by(col(Subscription.template_id)))).scalars()
    return [SubscriptionPublic(template_id=r.template_id, credits=r.credits) for r in rows]


async def preferences_of(uow: UnitOfWork, account_id: str) -> PreferencePublic:
    prefs = await uow.session.get(Preference, account_id)
    return PreferencePublic(channels_off=prefs.channels_off, rules_off=prefs.rules_off) if prefs else PreferencePublic()


async def set_preferences(
    uow: UnitOfWork, account_id: str, channels_off: list[str], rules_off: list[str]
) -> PreferencePublic:
    prefs = await uow.session.get(Preference, account_id)
    if prefs is None:
        prefs = Preference(account_id=account_id)
        uow.session.add(prefs)
    prefs.channels_off, prefs.rules_off, prefs.updated_at = list(channels_off), list(rules_off), utcnow()
    return PreferencePublic(channels_off=list(channels_off), rules_off=list(rules_off))
