"""The staff view of deliveries: masked addresses, no message bodies. Never commits."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.filters import where_given
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.notify.models import Delivery, DeliveryFilters, DeliveryPublic

_NEWEST_FIRST = Keyset((Delivery.id,), kinds=(UUID,))


async def deliveries_page(uow: UnitOfWork, page: PageRequest, filters: DeliveryFilters) -> Page[DeliveryPublic]:
    query = select(Delivery)
    query = where_given(query, (Delivery.channel, filters.channel), (Delivery.recipient_key, filters.recipient))
    if filters.status is not None:
        query = query.where(Delivery.status == filters.status.value)
    if filters.since is not None:
        query = query.where(col(Delivery.created_at) >= filters.since)
    deliveries = await keyset_page(uow.session, query, _NEWEST_FIRST, page)
    return deliveries.map(lambda d: DeliveryPublic.model_validate(d, from_attributes=True))


async def counts_by_channel_and_status(uow: UnitOfWork) -> dict[str, dict[str, int]]:
    channel, status = col(Delivery.channel), col(Delivery.status)
    rows = await uow.session.execute(sa.select(channel, status, sa.func.count()).group_by(channel, status))
    out: dict[str, dict[str, int]] = {}
    for ch, st, n in rows:
        out.setdefault(ch, {})[st] = n
    return out
