"""The WeChat one-time subscriptions a person's mini-program recorded (``/notify/subscriptions``): one send
credit per accepted template. Each function takes a unit of work and never commits."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.notify.models import Subscription, SubscriptionPublic
from services.notify.rules import rulebook

_SUBS = table_of(Subscription)
ACCEPTED = ("accept", "acceptWithAudio")


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
