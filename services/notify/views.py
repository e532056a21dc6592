"""The notify API: the caller's inbox, the WeChat subscriptions the mini-program records, preferences, and
the staff view of deliveries (masked, no bodies)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.errors import not_found
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.service import UoW
from minsheng.platform.sql import table_of
from services.notify import service
from services.notify.models import (
    Delivery,
    DeliveryPublic,
    DeliveryStatus,
    InboxPage,
    Message,
    MessagePublic,
    Preference,
    PreferencePublic,
    Subscription,
    SubscriptionPublic,
    SubscriptionRecord,
)
from services.notify.rules import Rule, rulebook

router = APIRouter()
_SUBS = table_of(Subscription)
Caller = Annotated[Principal, Depends(current_principal)]
Staff = Annotated[Principal, Depends(require(Role.staff))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


# --- inbox ---------------------------------------------------------------------------------------------------


@router.get("/inbox", response_model=InboxPage, tags=["inbox"], summary="The caller's messages, newest first")
async def inbox(
    uow: UoW, who: Caller, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None, unread_only: bool = False
) -> InboxPage:
    query = select(Message).where(Message.account_id == who.sub)
    if unread_only:
        query = query.where(col(Message.read_at).is_(None))
    if cursor:
        (before,) = decode_cursor(cursor, UUID)
        query = query.where(col(Message.id) < before)
    rows = list((await uow.session.execute(query.order_by(col(Message.id).desc()).limit(limit + 1))).scalars())
    page = page_of(
        [MessagePublic.model_validate(m, from_attributes=True) for m in rows], limit, lambda m: encode_cursor(m.id)
    )
    return InboxPage(items=page.items, next_cursor=page.next_cursor, unread=await service.inbox_unread(uow, who.sub))


class MarkRead(BaseModel):
    ids: list[UUID] | None = None  # None: all of the caller's messages


@router.post("/inbox/read", tags=["inbox"], summary="Mark the caller's messages read (the given ones, or all)")
async def mark_read(uow: UoW, who: Caller, body: MarkRead) -> dict[str, int]:
    marked = await service.mark_read(uow, who.sub, body.ids)
    await uow.commit()
    return {"marked": marked, "unread": await service.inbox_unread(uow, who.sub)}


@router.post("/inbox/{message_id}/read", response_model=MessagePublic, tags=["inbox"])
async def mark_one_read(uow: UoW, who: Caller, message_id: UUID) -> MessagePublic:
    message = await uow.session.get(Message, message_id)
    if message is None or message.account_id != who.sub:  # someone else's message does not exist for you
        raise not_found("message", message_id)
    if message.read_at is None:
        message.read_at = utcnow()
    out = MessagePublic.model_validate(message, from_attributes=True)
    await uow.commit()
    return out


# --- WeChat one-time subscriptions -------------------------------------------------------------------------------


@router.post(
    "/subscriptions",
    response_model=list[SubscriptionPublic],
    tags=["subscriptions"],
    summary="Record what the user accepted in wx.requestSubscribeMessage (each accept = one send)",
)
async def record_subscriptions(uow: UoW, who: Caller, body: SubscriptionRecord) -> list[SubscriptionPublic]:
    known = {r.wechat.template_id for r in rulebook().rules if r.wechat is not None}
    for template_id, answer in sorted(body.results.items()):
        if template_id == "errMsg" or answer not in ("accept", "acceptWithAudio") or template_id not in known:
            continue  # reject / ban / filter, or a template no rule uses: nothing to record
        # One statement (INSERT … ON CONFLICT DO UPDATE): two taps recorded at once both count.
        insert = pg_insert(_SUBS) if uow.db.is_postgres else sqlite_insert(_SUBS)
        await uow.session.execute(
            insert.values(
                id=uuid7(), account_id=who.sub, template_id=template_id, credits=1, updated_at=utcnow()
            ).on_conflict_do_update(
                index_elements=["account_id", "template_id"],
                set_={"credits": _SUBS.c.credits + 1, "updated_at": utcnow()},
            )
        )
    await uow.commit()
    return await _subscriptions(uow, who.sub)


@router.get("/subscriptions", response_model=list[SubscriptionPublic], tags=["subscriptions"])
async def my_subscriptions(uow: UoW, who: Caller) -> list[SubscriptionPublic]:
    return await _subscriptions(uow, who.sub)


async def _subscriptions(uow: UoW, sub: str) -> list[SubscriptionPublic]:
    rows = (
        await uow.session.execute(
            select(Subscription).where(Subscription.account_id == sub).order_by(col(Subscription.template_id))
        )
    ).scalars()
    return [SubscriptionPublic(template_id=r.template_id, credits=r.credits) for r in rows]


# --- preferences ---------------------------------------------------------------------------------------------------


@router.get("/preferences", response_model=PreferencePublic, tags=["preferences"])
async def my_preferences(uow: UoW, who: Caller) -> PreferencePublic:
    prefs = await uow.session.get(Preference, who.sub)
    return PreferencePublic(channels_off=prefs.channels_off, rules_off=prefs.rules_off) if prefs else PreferencePublic()


class PreferenceUpdate(BaseModel):
    channels_off: list[Literal["wechat", "sms"]] = []
    rules_off: list[str] = []


@router.put(
    "/preferences",
    response_model=PreferencePublic,
    tags=["preferences"],
    summary="Opt out of channels or rules (urgent messages still come: in the inbox and where allowed)",
)
async def set_preferences(uow: UoW, who: Caller, body: PreferenceUpdate) -> PreferencePublic:
    prefs = await uow.session.get(Preference, who.sub)
    if prefs is None:
        prefs = Preference(account_id=who.sub)
        uow.session.add(prefs)
    prefs.channels_off, prefs.rules_off, prefs.updated_at = list(body.channels_off), list(body.rules_off), utcnow()
    await uow.commit()
    return PreferencePublic(channels_off=list(body.channels_off), rules_off=list(body.rules_off))


# --- staff ---------------------------------------------------------------------------------------------------


@router.get(
    "/deliveries",
    response_model=Page[DeliveryPublic],
    tags=["operations"],
    summary="Deliveries, newest first (masked addresses, no message bodies)",
)
async def deliveries(
    uow: UoW,
    who: Staff,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: DeliveryStatus | None = None,
    channel: str | None = None,
    recipient: str | None = Query(default=None, description="recipient key, e.g. account:<sub>"),
    since: AwareDatetime | None = None,
) -> Page[DeliveryPublic]:
    query = select(Delivery)
    if status is not None:
        query = query.where(Delivery.status == status.value)
    if channel:
        query = query.where(Delivery.channel == channel)
    if recipient:
        query = query.where(Delivery.recipient_key == recipient)
    if since is not None:
        query = query.where(col(Delivery.created_at) >= since)
    if cursor:
        (before,) = decode_cursor(cursor, UUID)
        query = query.where(col(Delivery.id) < before)
    rows = (await uow.session.execute(query.order_by(col(Delivery.id).desc()).limit(limit + 1))).scalars()
    return page_of(
        [DeliveryPublic.model_validate(d, from_attributes=True) for d in rows], limit, lambda d: encode_cursor(d.id)
    )


class DeliverySummary(BaseModel):
    by_channel_status: dict[str, dict[str, int]]


@router.get("/deliveries/summary", response_model=DeliverySummary, tags=["operations"])
async def summary(uow: UoW, who: Staff) -> DeliverySummary:
    rows = await uow.session.execute(
        sa.select(col(Delivery.channel), col(Delivery.status), sa.func.count()).group_by(
            col(Delivery.channel), col(Delivery.status)
        )
    )
    out: dict[str, dict[str, int]] = {}
    for channel, st, n in rows:
        out.setdefault(channel, {})[st] = n
    return DeliverySummary(by_channel_status=out)


@router.get("/rules", response_model=list[Rule], tags=["operations"], summary="What is sent to whom (rules.json)")
async def rules(who: Staff) -> list[Rule]:
    return rulebook().rules
