"""Delivery that never loses or repeats a message: provider outage and throttling, token expiry, permanent
errors, quiet hours, opt-out, dead deliveries re-sent, and the staff view (masked)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from uuid import uuid4

from minsheng.contracts.issues import IssueCreated, IssueResolved
from minsheng.platform.sql import table_of
from services.notify import config
from services.notify.delivery_queue import resend
from tests.notify.helpers import (
    NOW,
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

RESULTS = Path(os.environ.get("MINSHENG_RESULTS_DIR", "/tmp")) / "notify_outage.json"


async def test_provider_outage_500_due_all_sent_exactly_once_afterwards(notify: System) -> None:
    s = notify
    outage = float(os.environ.get("MINSHENG_NOTIFY_OUTAGE_SECONDS", "30"))
    phones = [f"139{n:08d}" for n in range(500)]
    with config.override(
        **{**config.get().model_dump(), "retry_base_seconds": 0.5, "retry_max_seconds": 5.0, "max_attempts": 30}
    ):
        notifier(s).buckets.rates["sms"] = 1000.0
        notifier(s).buckets.bursts["sms"] = 1000
        started = time.monotonic()
        fault(s, "sms", "outage", outage)
        await publish_many(s, [alert(p) for p in phones], "canteen")
        await s.settle()
        fanned_out = time.monotonic() - started
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - started)))
        await flush(s, within=60, later_too=True)
        drained = time.monotonic() - (started + outage)
    texts = received(s, "sms")
    counts = Counter(t["phone"] for t in texts)
    rows = await deliveries(s, channel="sms")
    assert len(texts) == 500 and set(counts.values()) == {1}, Counter((r.status, r.last_error) for r in rows)
    assert len({t["SessionContext"] for t in texts}) == 500
    rows = await deliveries(s, channel="sms")
    assert {r.status for r in rows} == {"sent"}
    refused = standin(s).refused["sms"]
    figures = {
        "messages": 500,
        "outage_seconds": outage,
        "refused_during_outage": refused,
        "sent": len(texts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "lost": 500 - len(counts),
        "fan_out_seconds": round(fanned_out, 2),
        "drained_seconds_after_outage": round(drained, 2),
        "max_attempts_per_delivery": max(r.attempts for r in rows),
    }
    RESULTS.write_text(json.dumps(figures, indent=2))
    assert refused > 0  # messages were tried during the outage and refused


async def test_throttling_holds_and_retries_without_counting_attempts(notify: System) -> None:
    s = notify
    fault(s, "sms", "throttle", 3)  # long enough that a loaded machine still sends all 20 into it
    await publish_many(s, [alert(f"137{n:08d}") for n in range(20)], "canteen")
    await flush(s, later_too=True)
    assert len(received(s, "sms")) == 20
    rows = await deliveries(s, channel="sms")
    assert {r.status for r in rows} == {"sent"} and max(r.attempts for r in rows) == 1
    assert standin(s).refused["sms"] >= 20


async def test_an_expired_token_is_refreshed_and_the_message_sent(notify: System) -> None:
    s = notify
    sub = new_sub()
    await account(s, sub, openid="oToken00000000000000001")
    await subscribe(s, sub, "TPL_ISSUE_RESOLVED")
    assert (await subscribe(s, sub, "TPL_ISSUE_RESOLVED")) == [{"template_id": "TPL_ISSUE_RESOLVED", "credits": 2}]
    resolved = IssueResolved(
        issue_id=uuid4(), category="flooding", channel="resident", occurred_at=NOW, reporter=sub, note="已抽水"
    )
    await deliver(s, resolved, source="issues")
    await flush(s)
    calls = standin(s).token_calls
    standin(s).expire_tokens()
    await deliver(s, resolved.model_copy(update={"issue_id": uuid4()}), source="issues")
    await flush(s)
    assert len(received(s, "wechat")) == 2 and standin(s).token_calls == calls + 1
    assert {r.status for r in await deliveries(s, channel="wechat")} == {"sent"}


async def test_permanent_errors_fail_with_the_reason_and_dead_ones_can_be_resent(notify: System) -> None:
    s = notify
    await deliver(s, alert("12345"), source="canteen")  # not a mobile number
    await flush(s)
    [bad] = await deliveries(s, channel="sms")
    assert bad.status == "failed" and bad.last_error == "InvalidParameterValue.IncorrectPhoneNumber"
    assert bad.attempts == 1 and received(s, "sms") == []

    with config.override(**{**config.get().model_dump(), "max_attempts": 2}):
        fault(s, "sms", "outage", 1.0)
        await deliver(s, alert("13600000001"), source="canteen")
        await flush(s, later_too=True)
    dead = [r for r in await deliveries(s, channel="sms") if r.status == "dead"]
    assert len(dead) == 1 and dead[0].error_class == "exhausted"
    await asyncio.sleep(1.0)
    assert await resend(s.runtime("notify").db, [dead[0].id]) == 1
    await flush(s)
    assert [t["phone"] for t in received(s, "sms")] == ["+8613600000001"]


async def test_quiet_hours_hold_ordinary_messages_but_not_urgent_ones(notify: System) -> None:
    s = notify
    with config.override(**{**config.get().model_dump(), "quiet_start": clock(0, 0), "quiet_end": clock(23, 59, 59)}):
        await deliver(s, alert("13500000001"), source="canteen")
        await deliver(
            s,
            IssueCreated(
                issue_id=uuid4(),
                category="fire",
                channel="rider",
                urgent=True,
                community="yunxing",
                occurred_at=NOW,
                title="垃圾桶起火",
            ),
            source="issues",
        )
        await flush(s)
        assert len(received(s, "wecom")) == 1  # urgent: day or night
        assert received(s, "sms") == []
        [held] = await deliveries(s, channel="sms")
        assert held.status == "held" and held.next_attempt_at > datetime.now(UTC)
        # Even when it falls due, nothing ordinary goes out during quiet hours.
        await _make_due(s)
        await notifier(s).run_once()
        assert received(s, "sms") == []
    await flush(s)  # quiet hours over
    assert len(received(s, "sms")) == 1


async def _make_due(s: System) -> None:
    import sqlalchemy as sa

    from services.notify.models import Delivery

    d = table_of(Delivery)
    async with s.runtime("notify").db.engine.begin() as conn:
        await conn.execute(sa.update(d).where(d.c.status == "held").values(next_attempt_at=datetime.now(UTC)))


async def test_opting_out_of_wechat_keeps_the_inbox(notify: System) -> None:
    s = notify
    sub = new_sub()
    me = s.auth("resident", sub=sub)
    await account(s, sub, openid="oOptout000000000000001")
    await subscribe(s, sub, "TPL_ISSUE_RESOLVED")
    r = await s.client.put("/notify/preferences", headers=me, json={"channels_off": ["wechat"]})
    assert r.json() == {"channels_off": ["wechat"], "rules_off": []}
    await deliver(
        s,
        IssueResolved(issue_id=uuid4(), category="flooding", channel="resident", occurred_at=NOW, reporter=sub),
        source="issues",
    )
    await flush(s)
    assert received(s, "wechat") == []
    assert [r.status for r in await deliveries(s, channel="wechat")] == ["skipped"]
    assert (await s.client.get("/notify/inbox", headers=me)).json()["unread"] == 1


async def test_staff_see_deliveries_masked_and_filtered_and_metrics_count_them(notify: System) -> None:
    s = notify
    await deliver(s, alert("13912340000"), source="canteen")
    await deliver(s, alert("123"), source="canteen")
    await flush(s)
    desk = s.auth("staff", sub="ops-1", scopes=["*"])
    page = (await s.client.get("/notify/deliveries", headers=desk, params={"channel": "sms"})).json()
    assert [d["address_masked"] for d in page["items"]] == ["***", "139****0000"]
    assert all("body" not in d and "address_enc" not in d and "request" not in d for d in page["items"])
    failed = (await s.client.get("/notify/deliveries", headers=desk, params={"status": "failed"})).json()["items"]
    assert len(failed) == 1 and failed[0]["error_class"] == "permanent"
    limited = (await s.client.get("/notify/deliveries", headers=desk, params={"limit": 1})).json()
    nxt = (
        await s.client.get("/notify/deliveries", headers=desk, params={"limit": 1, "cursor": limited["next_cursor"]})
    ).json()
    assert limited["items"][0]["id"] != nxt["items"][0]["id"]
    summary = (await s.client.get("/notify/deliveries/summary", headers=desk)).json()
    assert summary["by_channel_status"]["sms"] == {"sent": 1, "failed": 1}
    await notifier(s).snapshot()
    text = (await s.client.get("/metrics")).text
    assert 'minsheng_notify_send_outcomes_total{channel="sms",outcome="ok"} 1.0' in text
    assert 'minsheng_notify_deliveries{channel="sms",status="failed"} 1.0' in text
    rules = (await s.client.get("/notify/rules", headers=desk)).json()
    assert {r["id"] for r in rules} >= {"issue_resolved", "urgent_issue_duty", "canteen_absence_family"}


async def test_the_cli_lists_dead_deliveries_masked_and_resends_them(notify: System, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from minsheng.cli import app

    s = notify
    await deliver(s, alert("12399998888"), source="canteen")  # the stand-in refuses 123… numbers
    await flush(s)
    env = {"MINSHENG_DATA_DIR": str(tmp_path), "MINSHENG_MODE": "embedded"}
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, app, ["notify", "deliveries"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["status"] == "failed" and row["address_masked"] == "123****8888"
    assert "12399998888" not in listed.output and "body" not in row
    resent = await asyncio.to_thread(runner.invoke, app, ["notify", "resend", "--id", row["id"]], env=env)
    assert resent.exit_code == 0 and resent.stdout.strip() == "1 deliveries due again"
    await flush(s)
    [again] = await deliveries(s, channel="sms")
    assert again.status == "failed" and again.attempts == 1  # tried once more, refused again


async def test_retention_deletes_finished_messages_and_keeps_what_is_still_to_send(notify: System) -> None:
    from services.notify.jobs import purge_old

    s = notify
    await deliver(s, alert("13900000001"), source="canteen")
    await flush(s)
    with config.override(**{**config.get().model_dump(), "quiet_start": clock(0, 0), "quiet_end": clock(23, 59, 59)}):
        await deliver(s, alert("13900000002"), source="canteen")  # held until morning
    with config.override(**{**config.get().model_dump(), "retention_days": 0}):
        assert await purge_old(s.runtime("notify")) == 1
    [kept] = await deliveries(s)
    assert kept.status == "held"
