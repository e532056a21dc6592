"""Shortcuts for the notify tests: put other services' events on the bus, make accounts known, wait until
the sender is done, read what the provider stand-ins received."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.canteen import AbsenceAlert, FamilyContact
from minsheng.contracts.identity import AccountContactChanged, AccountCreated, AccountLinked
from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.envelope import CloudEvent, wrap
from minsheng.platform.sql import table_of
from services.notify.models import Delivery, DeliveryStatus
from services.notify.sender import Notifier
from services.notify.standin import Fault, StandinState
from services.notify.state import NOTIFIERS
from tests.support.client import System

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def absence_alert(*contacts: FamilyContact, alert_id: UUID | None = None, diner_id: UUID | None = None) -> AbsenceAlert:
    """The canteen's alert that a diner in yuntai missed three days (last meal 2 December), naming ``contacts``."""
    return AbsenceAlert(
        alert_id=alert_id or uuid4(),
        diner_id=diner_id or uuid4(),
        canteen_id=uuid4(),
        community="yuntai",
        last_meal_on=date(2026, 12, 2),
        days_absent=3,
        meals_last_30_days=26,
        raised_at=NOW,
        family_contacts=list(contacts),
    )


def notifier(s: System) -> Notifier:
    return NOTIFIERS[s.runtime("notify").db]


def standin(s: System) -> StandinState:
    n = notifier(s)
    assert n.standin is not None
    return n.standin.state


def received(s: System, channel: str) -> list[dict[str, Any]]:
    return list(standin(s).received[channel])


def _message(event: IntegrationEvent, envelope: CloudEvent) -> OutgoingMessage:
    return OutgoingMessage(event.topic, envelope.partitionkey, envelope.model_dump_json(exclude_none=True).encode())


async def _publish_and_drain(s: System, messages: list[OutgoingMessage]) -> None:
    assert isinstance(s.bus, InProcessBus)
    await s.bus.publish(messages)
    await s.bus.drain()


async def deliver(
    s: System, event: IntegrationEvent, *, source: str, times: int = 1, envelope: CloudEvent | None = None
) -> CloudEvent:
    """Put another service's event on the in-process bus (``times`` > 1: redelivered) and wait until handled."""
    envelope = envelope or wrap(event, service=source)
    await _publish_and_drain(s, [_message(event, envelope)] * times)
    return envelope


async def publish_many(s: System, events: list[IntegrationEvent], source: str) -> None:
    """Put many events of ``source`` on the in-process bus in one publish and wait until all are handled."""
    await _publish_and_drain(s, [_message(e, wrap(e, service=source)) for e in events])


def alert(phone: str) -> AbsenceAlert:
    """An absence alert naming one family member, reached at ``phone``."""
    return absence_alert(FamilyContact(member_id=uuid4(), phone=phone))


def fault(s: System, channel: str, mode: str, seconds: float) -> None:
    """Make the provider stand-in of ``channel`` fail (``mode``) for the next ``seconds``."""
    standin(s).faults[channel] = Fault(mode, time.monotonic() + seconds)


async def account(
    s: System,
    sub: str,
    *,
    openid: str | None = None,
    phone: str | None = None,
    locale: str = "zh-CN",
    roles: tuple[str, ...] = ("resident",),
) -> None:
    """As if identity told notify about this account (``sub`` must be a UUID string)."""
    await deliver(
        s,
        AccountCreated(account_id=UUID(sub), occurred_at=NOW, kind="wechat", roles=list(roles), locale=locale),
        source="identity",
    )  # type: ignore[arg-type]
    if openid or phone:
        await deliver(
            s,
            AccountContactChanged(
                account_id=UUID(sub), occurred_at=NOW, wechat_openid=openid, phone=phone, locale=locale
            ),
            source="identity",
        )  # type: ignore[arg-type]


async def link(s: System, sub: str, record: str, record_id: UUID) -> None:
    await deliver(
        s,
        AccountLinked(account_id=UUID(sub), occurred_at=NOW, record=record, record_id=record_id, method="admin"),
        source="identity",
    )  # type: ignore[arg-type]


def new_sub() -> str:
    return str(uuid4())


async def subscribe(s: System, sub: str, *templates: str) -> Any:
    r = await s.client.post(
        "/notify/subscriptions",
        headers=s.auth("resident", sub=sub),
        json={"results": {"errMsg": "requestSubscribeMessage:ok", **{t: "accept" for t in templates}}},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def due_or_sending(s: System, *, later_too: bool = False) -> int:
    d = table_of(Delivery)
    now = datetime.max.replace(tzinfo=UTC) if later_too else datetime.now(UTC)
    async with s.runtime("notify").db.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(d)
                    .where(
                        sa.or_(
                            sa.and_(
                                d.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.held.value]),
                                d.c.next_attempt_at <= now,
                            ),
                            d.c.status == DeliveryStatus.sending.value,
                        )
                    )
                )
            ).scalar_one()
        )


async def flush(s: System, within: float = 20.0, *, later_too: bool = False) -> None:
    """Settle the bus, then send until nothing is due (``later_too``: nor waiting for later); the background
    sender may take some of the rows."""
    if isinstance(s.bus, InProcessBus):
        await s.settle()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await notifier(s).run_once()
        if await due_or_sending(s, later_too=later_too) == 0:
            return
        if loop.time() > deadline:
            raise AssertionError("deliveries still due")
        await asyncio.sleep(0.02)


async def deliveries(s: System, **where: Any) -> list[Any]:
    d = table_of(Delivery)
    query = sa.select(d).order_by(d.c.id)
    for k, v in where.items():
        query = query.where(d.c[k] == v)
    async with s.runtime("notify").db.engine.connect() as conn:
        return list((await conn.execute(query)).all())
