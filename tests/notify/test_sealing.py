"""Notify's personal data at rest is bound to its place (issue 13): a recipient's openid and phone, a care
contact's phone, a delivery's address; values sealed before, without associated data, still reach people."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from minsheng.contracts.canteen import FamilyContact
from minsheng.contracts.visits import WelfareCheckCompleted
from minsheng.platform.privacy import field_cipher
from services.notify.app import SPEC
from tests.notify.helpers import absence_alert, account, deliver, deliveries, flush, new_sub, received, subscribe
from tests.support.client import System

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RECIPIENTS, CONTACTS = SPEC.metadata.tables["recipients"], SPEC.metadata.tables["care_contacts"]


async def _rows(s: System, table: sa.Table) -> list[sa.Row[object]]:
    async with s.runtime("notify").db.engine.connect() as conn:
        return list((await conn.execute(sa.select(table))).all())


async def test_notify_values_are_bound_to_their_rows_and_old_ones_still_read(notify: System) -> None:
    s = notify
    fc = field_cipher(s.settings)
    daughter_sub, alert_id = new_sub(), uuid4()
    await account(s, daughter_sub, openid="oBound0000000000000001", phone="13935209902")
    await subscribe(s, daughter_sub, "TPL_CARE_ALERT")
    alert = absence_alert(
        FamilyContact(member_id=uuid4(), subject="no-account-son", relation="son", phone="13935209901"),
        FamilyContact(member_id=uuid4(), subject=daughter_sub, relation="daughter", phone="13935209902"),
        alert_id=alert_id,
    )
    await deliver(s, alert, source="canteen")
    await flush(s)
    assert sorted(t["phone"] for t in received(s, "sms")) == ["+8613935209901"]
    assert [t["touser"] for t in received(s, "wechat")] == ["oBound0000000000000001"]

    [recipient] = [r for r in await _rows(s, RECIPIENTS) if r.account_id == daughter_sub]
    assert fc.open(recipient.openid_enc, "recipients", "openid_enc", daughter_sub) == "oBound0000000000000001"
    assert fc.open(recipient.phone_enc, "recipients", "phone_enc", daughter_sub) == "13935209902"
    contacts = await _rows(s, CONTACTS)
    assert sorted(fc.open(c.phone_enc, "care_contacts", "phone_enc", c.id) or "" for c in contacts) == [
        "13935209901",
        "13935209902",
    ]
    sent = await deliveries(s, channel="sms") + await deliveries(s, channel="wechat")
    assert len(sent) == 2
    for d in sent:
        assert fc.open(d.address_enc, "deliveries", "address_enc", d.id) in ("13935209901", "oBound0000000000000001")
    # bound: not readable in another row or column, nor without the associated data
    for stored, table, column, row_id in (
        (recipient.phone_enc, "recipients", "phone_enc", new_sub()),
        (recipient.phone_enc, "recipients", "openid_enc", daughter_sub),
        (contacts[0].phone_enc, "care_contacts", "phone_enc", contacts[1].id),
        (sent[0].address_enc, "deliveries", "address_enc", sent[1].id),
    ):
        with pytest.raises(InvalidTag):
            fc.open(stored, table, column, row_id, unbound=True)
    with pytest.raises(InvalidTag):
        fc.decrypt(recipient.openid_enc)

    # As stored before they were bound (no associated data): the welfare-check outcome still reaches the same
    # family, by the care contacts' phones and the recipient's openid (no WeChat credit left: its SMS fallback).
    async with s.runtime("notify").db.engine.begin() as conn:
        await conn.execute(
            sa.update(RECIPIENTS)
            .where(RECIPIENTS.c.account_id == daughter_sub)
            .values(openid_enc=fc.encrypt("oBound0000000000000001"), phone_enc=fc.encrypt("13935209902"))
        )
        for c in contacts:
            clear = fc.open(c.phone_enc, "care_contacts", "phone_enc", c.id)
            await conn.execute(sa.update(CONTACTS).where(CONTACTS.c.id == c.id).values(phone_enc=fc.encrypt(clear)))
    await subscribe(s, daughter_sub, "TPL_CARE_ALERT")
    await deliver(
        s,
        WelfareCheckCompleted(visit_id=uuid4(), alert_id=alert_id, outcome="visited", completed_at=NOW),
        source="visits",
    )
    await flush(s)
    assert sorted(t["phone"] for t in received(s, "sms")) == ["+8613935209901", "+8613935209901"]
    assert [t["touser"] for t in received(s, "wechat")] == ["oBound0000000000000001"] * 2


async def test_a_duty_shift_phone_is_bound_to_its_shift(notify: System) -> None:
    from tests.notify.test_duty_roster import on_duty, staff

    s = notify
    fc = field_cipher(s.settings)
    for person, phone in ((new_sub(), "13912340001"), (new_sub(), "13912340002")):
        await on_duty(s, staff(s), community="yunxing", account_id=person, phone=phone)
    roster = SPEC.metadata.tables["duty_roster"]
    a, b = sorted(await _rows(s, roster), key=lambda r: r.phone_masked or "")
    assert fc.open(a.phone_enc, "duty_roster", "phone_enc", a.id) == "13912340001"
    with pytest.raises(InvalidTag):
        fc.open(a.phone_enc, "duty_roster", "phone_enc", b.id, unbound=True)
