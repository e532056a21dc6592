"""On PostgreSQL: two sender replicas share the queue (FOR UPDATE SKIP LOCKED) and send nothing twice; a
redelivered event writes nothing twice; the issue, digest, resident, vote, duty, canteen family, rider and
grid-worker rules work end to end."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from minsheng.platform.db import Database
from minsheng.platform.privacy import remember_settings
from services.issues.demo_catalogue import seed_catalogue
from services.notify import config
from services.notify.lifespan import build_adapters
from services.notify.sender import Notifier
from tests.conftest import embedded_settings
from tests.issues.helpers import FLOOD, act, report, resident, staff
from tests.notify.helpers import (
    account,
    alert,
    deliver,
    deliveries,
    due_or_sending,
    flush,
    new_sub,
    notifier,
    publish_many,
    received,
    standin,
    subscribe,
)
from tests.support.client import System, running_system

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_notify(tmp_path: Path, pg_template: str, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    async with running_system(
        embedded_settings(tmp_path, database_url=pg_template), services=("issues", "notify")
    ) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s


async def test_two_sender_replicas_send_every_message_once(pg_notify: System) -> None:
    s = pg_notify
    n = 300
    runtime = s.runtime("notify")
    await notifier(s).stop()  # only the two replicas below send
    phones = [f"138{i:08d}" for i in range(n)]
    await publish_many(s, [alert(p) for p in phones], "canteen")
    await s.settle()
    standin = notifier(s).standin
    assert standin is not None
    replicas = []
    async with httpx.AsyncClient() as client:
        for name in ("replica-a", "replica-b"):
            db = Database(runtime.settings.database_url_for("notify"), runtime.spec.tables)
            remember_settings(db, runtime.settings)
            replicas.append(Notifier(db, build_adapters(client, standin), name=name))
        for r in replicas:
            r.buckets.rates["sms"], r.buckets.bursts["sms"] = 10_000.0, 10_000

        async def drain(r: Notifier) -> int:
            handled = 0
            while True:
                done = await r.run_once(["sms"])
                handled += done
                if not done and await due_or_sending(s) == 0:
                    return handled
                await asyncio.sleep(0)

        shares = await asyncio.gather(*(drain(r) for r in replicas))
        for r in replicas:
            await r.db.dispose()
    texts = received(s, "sms")
    counts = Counter(t["phone"] for t in texts)
    assert len(texts) == n and set(counts.values()) == {1}
    assert sum(shares) == n and all(share > 0 for share in shares), shares  # both took part
    assert {r.status for r in await deliveries(s, channel="sms")} == {"sent"}


async def test_redelivered_events_write_nothing_twice_and_issue_rules_work(pg_notify: System) -> None:
    s = pg_notify
    sub = new_sub()
    await account(s, sub, openid="oPg000000000000000001")
    await subscribe(s, sub, "TPL_ISSUE_RESOLVED")
    me, desk = resident(s, sub), staff(s)
    issue = await report(s, me, FLOOD)
    await act(s, issue["id"], "resolve", desk, {"template": "fixed"})
    await flush(s)
    first = alert("13700000009")
    envelope = await deliver(s, first, source="canteen", times=3)
    await deliver(s, first, source="canteen", envelope=envelope)
    await flush(s)
    assert len(received(s, "sms")) == 1 and len(received(s, "wechat")) == 1
    inbox = (await s.client.get("/notify/inbox", headers=me)).json()
    assert [m["rule"] for m in inbox["items"]] == ["issue_resolved"] and inbox["unread"] == 1


async def test_the_daily_digest_and_the_resident_and_vote_rules_on_postgresql(pg_notify: System) -> None:
    from tests.notify.test_digest import (
        test_a_residents_happiness_bill_comes_once_a_month,
        test_one_digest_per_duty_group_and_day_from_what_notify_consumed,
    )
    from tests.notify.test_resident_family_rules import (
        test_a_need_recorded_at_the_door_its_progress_and_closure_reach_the_resident,
        test_a_vote_opening_and_its_results_reach_the_residents_who_may_vote,
    )

    await test_one_digest_per_duty_group_and_day_from_what_notify_consumed(pg_notify)  # two replicas: SKIP LOCKED
    await test_a_need_recorded_at_the_door_its_progress_and_closure_reach_the_resident(pg_notify)
    await test_a_vote_opening_and_its_results_reach_the_residents_who_may_vote(pg_notify)  # JSONB @> scopes
    await test_a_residents_happiness_bill_comes_once_a_month(pg_notify)


async def test_the_duty_roster_and_the_urgent_sms_fallback_on_postgresql(pg_notify: System) -> None:
    """The roster's API and the on-duty query (migration 0004) on PostgreSQL: the same flows as on SQLite."""
    from tests.notify import test_duty_roster as roster

    await roster.test_staff_keep_the_roster_of_their_community_and_admins_the_districts(pg_notify)
    await roster.test_wechat_refusing_for_good_falls_back_to_sms_and_a_subscriber_gets_wechat(pg_notify)


async def test_the_canteen_family_and_rider_rules_on_postgresql(pg_notify: System) -> None:
    """The family's absence alert (SMS for the member without an account, WeChat for the one with, and the
    welfare-check outcome's fallback) and the riders' rules through the ``points.rider`` link, on PostgreSQL."""
    from tests.notify import test_flows as flows

    # In this order on one system: the inbox-only rules leave no WeChat or SMS rows the later ones count.
    await flows.test_riders_hear_a_task_claimed_and_points_reversed_or_voided_in_the_inbox_only(pg_notify)
    await flows.test_an_absence_alert_reaches_the_family_by_sms_and_wechat(pg_notify)
    for sent in standin(pg_notify).received.values():
        sent.clear()  # what the stand-in received so far (the family's WeChat message) is checked
    await flows.test_riders_hear_about_points_and_tasks_through_their_linked_account(pg_notify)


async def test_the_grid_worker_rule_on_postgresql(
    tmp_path: Path, pg_template: str, fast_notify: config.NotifySettings
) -> None:
    """The absence alert through the real visits service to the grid worker in charge, on PostgreSQL."""
    from tests.notify.test_grid_worker import test_the_grid_worker_in_charge_hears_of_the_welfare_check_and_nobody_else

    async with running_system(
        embedded_settings(tmp_path, database_url=pg_template), services=("visits", "notify")
    ) as s:
        await test_the_grid_worker_in_charge_hears_of_the_welfare_check_and_nobody_else(s)
