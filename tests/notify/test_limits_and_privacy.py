"""Per-channel rate limits limit: more messages due than a channel's bucket allows wait (pending, not lost, not
failed) and go as the bucket refills. And PIPL: a full send, provider errors included, logs no message body,
phone number or openid."""

from __future__ import annotations

import logging
from collections import Counter
from uuid import uuid4

import pytest

from minsheng.contracts.canteen import FamilyContact
from services.notify.models import DeliveryStatus
from services.notify.sender import Buckets
from tests.notify.helpers import (
    absence_alert,
    account,
    alert,
    deliver,
    deliveries,
    fault,
    flush,
    new_sub,
    notifier,
    publish_many,
    received,
    standin,
    subscribe,
)
from tests.support.client import System


async def test_more_sms_due_than_the_rate_allows_wait_and_then_all_go_once(notify: System) -> None:
    s = notify
    rate, burst, n = 5.0, 2, 12
    buckets = notifier(s).buckets = Buckets({"sms": rate}, {"sms": burst})
    buckets.take("sms", burst)  # an empty bucket: what goes is what the rate lets through
    phones = [f"136{k:08d}" for k in range(n)]
    await publish_many(s, [alert(p) for p in phones], "canteen")
    await s.settle()  # every delivery is written and due; the sender was woken by the commit

    rows = await deliveries(s, channel="sms")
    assert len(rows) == n
    waiting = [r for r in rows if r.status == DeliveryStatus.pending.value]
    assert len(waiting) >= n - burst - 1, Counter(r.status for r in rows)  # the excess waits, due but unclaimed
    assert all(r.attempts == 0 and r.error_class is None for r in waiting)  # not an attempt, not an error

    await flush(s, within=30, later_too=True)
    texts = sorted(received(s, "sms"), key=lambda t: t["at"])
    assert Counter(t["phone"] for t in texts) == Counter(f"+86{p}" for p in phones)  # each once: none lost
    rows = await deliveries(s, channel="sms")
    assert {(r.status, r.attempts, r.error_class) for r in rows} == {("sent", 1, None)}  # none failed or retried
    assert standin(s).refused["sms"] == 0  # held back by notify, never by the provider
    # No window of time saw more than the bucket allows: its burst and the rate over the window (+1 for the
    # token that refills while a round is under way).
    at = [t["at"] for t in texts]
    for i in range(n):
        for j in range(i + 1, n):
            assert j - i + 1 <= burst + rate * (at[j] - at[i]) + 1, (i, j, at[j] - at[i])
    assert at[-1] - at[0] >= (n - burst - 1) / rate * 0.95


PHONE_ONLY, PHONE_WITH_ACCOUNT = "13935209901", "13935209902"
BAD_OPENID = "oPIPL.secret.openid.0001"  # WeChat refuses it (40003): the message falls back to SMS


async def test_a_full_send_with_provider_errors_logs_no_body_phone_or_openid(
    notify: System, caplog: pytest.LogCaptureFixture
) -> None:
    s = notify
    # The production level (INFO) for everything, and the project's own code at DEBUG as well. (At DEBUG,
    # aiosqlite logs every statement with its parameters: libraries' debug logs are not for production.)
    caplog.set_level(logging.INFO)
    for ours in ("minsheng", "services"):
        caplog.set_level(logging.DEBUG, logger=ours)
    sub = new_sub()
    await account(s, sub, openid=BAD_OPENID, phone=PHONE_WITH_ACCOUNT)
    await subscribe(s, sub, "TPL_CARE_ALERT")
    fault(s, "sms", "outage", 0.5)  # the first SMS attempts fail (HTTP 503) and are retried
    event = absence_alert(
        FamilyContact(member_id=uuid4(), subject=None, relation="son", phone=PHONE_ONLY),
        FamilyContact(member_id=uuid4(), subject=sub, relation="daughter", phone=PHONE_WITH_ACCOUNT),
    )
    await deliver(s, event, source="canteen")
    await flush(s, later_too=True)

    assert sorted(t["phone"] for t in received(s, "sms")) == [f"+86{PHONE_ONLY}", f"+86{PHONE_WITH_ACCOUNT}"]
    assert received(s, "wechat") == [] and standin(s).refused["sms"] > 0
    wechat = await deliveries(s, channel="wechat")
    assert [(d.status, d.last_error) for d in wechat] == [("failed", "errcode 40003: bad touser")]
    [message] = (await s.client.get("/notify/inbox", headers=s.auth("resident", sub=sub))).json()["items"]

    logged = "\n".join(
        " ".join(
            [record.getMessage(), str(getattr(record, "fields", "")), caplog.handler.format(record)]
            + ([str(record.exc_info[1])] if record.exc_info else [])
        )
        for record in caplog.records
    )
    assert "via sms: transient" in logged and "via wechat: permanent" in logged  # the sends were logged
    secrets = [message["body"], message["title"], BAD_OPENID, PHONE_ONLY, PHONE_WITH_ACCOUNT]
    secrets += [p[-8:] for p in (PHONE_ONLY, PHONE_WITH_ACCOUNT)]  # nor a phone's digits in another form
    assert [x for x in secrets if x in logged] == []
