"""A signed-in person's inbox (``/notify/inbox``): their messages, newest first, and marking them read. Each
function takes a unit of work and never commits."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.errors import not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.notify.models import InboxPage, Message, MessagePublic

_NEWEST_FIRST = Keyset((Message.id,), kinds=(UUID,))


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
