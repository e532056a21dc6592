"""Fan-out of a consumer batch: many events in one transaction, their messages and deliveries written together
at the commit. Preferences still apply per recipient, a redelivered batch writes nothing twice, an alert and
its welfare-check outcome in one batch reach the same family, and one account behind two family members of
one alert gets one message. The sender records a round's accepted deliveries in one statement, each with its
own provider reference, and only those still under its lease."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import sqlalchemy as sa

from minsheng.contracts.canteen import FamilyContact
from minsheng.contracts.visits import WelfareCheckCompleted
from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.envelope import wrap
from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from services.notify import config, delivery_queue, outcomes
from services.notify.channels import Outcome
from services.notify.models import Delivery, Message
from tests.notify.helpers import absence_alert, account, deliveries, flush, new_sub, notifier, received
from tests.support.client import System

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


async def _publish_together(s: System, events: list[tuple[object, str]], *, times: int = 1) -> None:
    """Put events on the bus in one publish, so the consumer gets them as one batch (``times``: redelivered)."""
    messages = []
    for event, source in events:
        envelope = wrap(event, service=source)  # type: ignore[arg-type]
        payload = envelope.model_dump_json(exclude_none=True).encode()
        messages.append(OutgoingMessage(event.topic, envelope.partitionkey, payload))  # type: ignore[attr-defined]
    assert isinstance(s.bus, InProcessBus)
    await s.bus.publish(messages * times)
    await s.bus.drain()


async def _messages(s: System) -> list[tuple[str, str]]:
    m = table_of(Message)
    async with s.runtime("notify").db.engine.connect() as conn:
        found = await conn.execute(sa.select(m.c.rule, m.c.recipient_key).order_by(m.c.recipient_key))
        return [(rule, key) for rule, key in found]


async def test_a_batch_where_one_recipient_opted_out_and_which_is_redelivered(notify: System) -> None:
    s = notify
    opted_out, phones = new_sub(), [f"1393520{n:04d}" for n in range(5)]
    await account(s, opted_out, phone="13935209999")
    r = await s.client.put(
        "/notify/preferences", headers=s.auth("resident", sub=opted_out), json={"channels_off": ["sms"]}
    )
    assert r.status_code == 200, r.text
    alerts = [absence_alert(FamilyContact(member_id=uuid4(), phone=p)) for p in phones]
    alerts.append(absence_alert(FamilyContact(member_id=uuid4(), subject=opted_out, phone="13935208888")))
    consumer = s.runtime("notify").consumer
    batches = consumer.stats.batches
    await _publish_together(s, [(a, "canteen") for a in alerts], times=2)  # the batch twice: once in effect
    await flush(s)
    assert consumer.stats.batches > batches and consumer.stats.batch_fallbacks == 0
    assert sorted(t["phone"] for t in received(s, "sms")) == sorted(f"+86{p}" for p in phones)
    assert len(await _messages(s)) == 6
    [skipped] = [d for d in await deliveries(s, channel="sms") if d.recipient_key == f"account:{opted_out}"]
    assert skipped.status == "skipped"


async def test_an_alert_and_its_outcome_in_one_batch_reach_the_family_once_each(notify: System) -> None:
    s = notify
    behind_both = new_sub()
    await account(s, behind_both)  # no openid, no phone of its own: the contacts' phone is used
    alert_id = uuid4()
    alert = absence_alert(
        FamilyContact(member_id=uuid4(), subject=behind_both, phone="13935201201"),
        FamilyContact(member_id=uuid4(), subject=behind_both, phone="13935201202"),
        FamilyContact(member_id=uuid4(), phone="13935201203"),
        alert_id=alert_id,
    )
    outcome = WelfareCheckCompleted(visit_id=uuid4(), alert_id=alert_id, outcome="visited", completed_at=NOW)
    await _publish_together(s, [(alert, "canteen"), (outcome, "visits")])
    await flush(s)
    rows = await _messages(s)
    keys = sorted({key for _, key in rows})
    assert len(keys) == 2 and keys[0] == f"account:{behind_both}" and keys[1].startswith("phone:")
    assert sorted(rows) == sorted(
        (rule, key) for rule in ("canteen_absence_family", "welfare_check_family") for key in keys
    )
    assert len(received(s, "sms")) == 4  # the account and the phone-only member, for the alert and the outcome


async def test_a_round_records_each_accepted_delivery_with_its_reference_and_only_under_its_lease(
    notify: System,
) -> None:
    s = notify
    sender = notifier(s)
    await sender.stop()  # this test plays the sender's round itself
    alerts = [absence_alert(FamilyContact(member_id=uuid4(), phone=f"1393530{n:04d}")) for n in range(4)]
    await _publish_together(s, [(a, "canteen") for a in alerts])
    await s.settle()
    lease = utcnow() + timedelta(seconds=30)
    rows = await delivery_queue.claim(sender.db, "sms", 10, lease)
    assert len(rows) == 4
    d = table_of(Delivery)
    taken_over = rows[0].id
    async with s.runtime("notify").db.engine.begin() as conn:  # as if another replica took it after our lease
        await conn.execute(sa.update(d).where(d.c.id == taken_over).values(lease_until=lease + timedelta(seconds=1)))
    results = [Outcome("ok", provider_ref=f"ref-{row.id}") for row in rows]
    await outcomes.record(sender.db, rows, [True] * len(rows), results, lease, sender.stats)
    by_id = {r.id: r for r in await deliveries(s, channel="sms")}
    assert by_id[taken_over].status == "sending" and by_id[taken_over].provider_ref is None
    for row in rows[1:]:
        assert by_id[row.id].status == "sent" and by_id[row.id].provider_ref == f"ref-{row.id}"
        assert by_id[row.id].lease_until is None and by_id[row.id].sent_at is not None


async def test_wake_ups_for_one_channel_do_not_starve_what_falls_due_on_another(notify: System) -> None:
    """Fan-outs wake the sender for their own channels, which it then claims without looking at the others;
    it still looks at every channel once per poll interval, so a retry falling due on SMS goes while WeChat
    wake-ups keep coming."""
    s = notify
    sender = notifier(s)
    await sender.stop()
    await _publish_together(s, [(absence_alert(FamilyContact(member_id=uuid4(), phone="13935401234")), "canteen")])
    await s.settle()
    d = table_of(Delivery)
    async with s.runtime("notify").db.engine.begin() as conn:  # a retry, due in 0.4 s
        await conn.execute(
            sa.update(d).where(d.c.channel == "sms").values(next_attempt_at=utcnow() + timedelta(seconds=0.4))
        )
    with config.override(sender_poll_seconds=0.3):
        sender.start()
        started = time.perf_counter()
        while not received(s, "sms"):
            assert time.perf_counter() - started < 10.0, "the SMS retry starved behind the WeChat wake-ups"
            sender.wake(["wechat"])
            await asyncio.sleep(0.02)
    assert [r["phone"] for r in received(s, "sms")] == ["+8613935401234"]
