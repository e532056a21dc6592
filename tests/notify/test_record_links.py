"""The links visits and canteen make (a resident's account, a diner's relative by the canteen's one-time
code) reach notify's read model: a relative linked by code hears the absence alert in their account's inbox
(not only by SMS), a resident linked by their verified phone hears about the needs at their door."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid4

from minsheng.contracts.canteen import FamilyContact, FamilyMemberLinked
from minsheng.contracts.visits import NeedProgressed, ResidentAccountLinked
from tests.notify.helpers import absence_alert, account, deliver, flush, new_sub, received
from tests.support.client import System

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


async def _inbox_rules(s: System, sub: str) -> list[str]:
    r = await s.client.get("/notify/inbox", headers=s.auth("resident", sub=sub))
    assert r.status_code == 200, r.text
    return [m["rule"] for m in r.json()["items"]]


async def test_a_relative_linked_by_the_canteen_code_hears_the_absence_alert(notify: System) -> None:
    s = notify
    son_account, stranger, member_id, diner_id = new_sub(), new_sub(), uuid4(), uuid4()
    await account(s, son_account)
    await account(s, stranger)
    linked = FamilyMemberLinked(
        diner_id=diner_id, member_id=member_id, account_id=son_account, method="door_code", linked_at=NOW
    )
    await deliver(s, linked, source="canteen", times=2)  # redelivered: one link
    # The canteen names the member (and its phone); the member's login is not one notify knows by itself.
    contact = FamilyContact(member_id=member_id, subject=None, relation="son", phone="13935201101")
    alert = absence_alert(contact, diner_id=diner_id)
    await deliver(s, alert, source="canteen")
    await flush(s)
    assert await _inbox_rules(s, son_account) == ["canteen_absence_family"]
    assert await _inbox_rules(s, stranger) == []
    assert [m["phone"] for m in received(s, "sms")] == ["+8613935201101"]


async def test_a_resident_linked_by_visits_hears_about_the_need_at_their_door(notify: System) -> None:
    s = notify
    sub, resident_id, need_id = new_sub(), uuid4(), uuid4()
    await account(s, sub)
    await deliver(
        s,
        ResidentAccountLinked(
            resident_id=resident_id, account_id=sub, method="verified_phone", confirmed_by="gw-1", linked_at=NOW
        ),
        source="visits",
    )
    await deliver(
        s,
        NeedProgressed(
            need_id=need_id,
            household_id=uuid4(),
            resident_id=UUID(str(resident_id)),
            action="raised",
            status="open",
            category="elderly_care",
            title="腿受伤，需要拐杖",
            community="yuntai",
            compound="yuntaiyuan",
            due_on=date(2026, 12, 9),
            occurred_at=NOW,
        ),
        source="visits",
    )
    await flush(s)
    assert await _inbox_rules(s, sub) == ["need_recorded"]
