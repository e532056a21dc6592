"""The staff view of deliveries: masked addresses, no message bodies. Never commits."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.filters import where_given
from minsheng.platform.pagination import Keyset, Page
from minsheng.platform.uow import UnitOfWork
from services.notify.models import Delivery, DeliveryPublic, DeliveryStatus

_NEWEST_FIRST = Keyset((Delivery.id,), kinds=(UUID,))


async def deliveries_page(
    uow: UnitOfWork,
    *,
    limit: int,
    cursor: str | None,
    status: DeliveryStatus | None = None,
    channel: str | None = None,
    recipient: str | None = None,
    since: datetime | None = None,
) -> Page[DeliveryPublic]:
    query = select(Delivery)
    query = where_given(query, (Delivery.channel, channel), (Delivery.recipient_key, recipient))
    if status is not None:
        query = query.where(Delivery.status == status.value)
    if since is not None:
        query = query.where(col(Delivery.created_at) >= since)
    rows = list((await uow.session.execute(_NEWEST_FIRST.query(query, cursor, limit))).scalars())
    page = _NEWEST_FIRST.page(rows, limit)
    items = [DeliveryPublic.model_validate(d, from_attributes=True) for d in page.items]
    return Page[DeliveryPublic](items=items, next_cursor=page.next_cursor)


async def counts_by_channel_and_status(uow: UnitOfWork) -> dict[str, dict[str, int]]:
    channel, status = col(Delivery.channel), col(Delivery.status)
    rows = await uow.session.execute(sa.select(channel, status, sa.func.count()).group_by(channel, status))
    out: dict[str, dict[str, int]] = {}
    for ch, st, n in rows:
        out.setdefault(ch, {})[st] = n
    return out
