"""Over Kafka, in separate ``minsheng serve`` processes (identity, points, issues, notify; the notify process with
its provider stand-ins explicitly enabled), one rule per producing service, with one set of processes:

- issues: a rider's fire report reaches the duty group's WeCom robot; its resolution reaches the reporter (the
  rider's account, signed in through identity's WeChat sign-in, so notify has its openid from identity's account
  events) in the inbox and by exactly one WeChat subscribe message;
- points: the points the verification earned reach the rider's inbox (the ``points.rider`` link from points'
  ``RiderAccountLinked``, published at registration);
- visits: a need progressed reaches the resident it is about (linked by visits' ``ResidentAccountLinked``);
- canteen: an absence alert reaches a phone-only family member by SMS.

The visits and canteen events are put on their topics by the test, as those services publish them (their
contract, envelope, topic and key): running their processes and building an elder's meal history or a visit
ledger over HTTP would not test notify any further (``test_grid_worker.py`` and the canteen's own tests drive
the real producers)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.canteen import FamilyContact
from minsheng.contracts.visits import ResidentAccountLinked
from minsheng.platform.envelope import wrap
from minsheng.platform.ids import utcnow
from services.identity import config as identity_config
from services.identity.standin import openid_for
from tests.notify.helpers import absence_alert
from tests.notify.test_resident_family_rules import progressed
from tests.support.infra import LocalBroker, eventually, free_port
from tests.support.processes import dev_token, distributed_env, process_settings, services_running
from tests.support.reliability import pg_connect
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


async def test_one_rule_per_producing_service_across_processes(
    pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    standin_port = free_port()
    env = {
        **distributed_env(pg_template, kafka[0]),
        "MINSHENG_NOTIFY_STANDIN": "true",
        "MINSHENG_NOTIFY_STANDIN_PORT": str(standin_port),
        "MINSHENG_NOTIFY_QUIET_START": "00:00",  # no quiet hours: the WeChat message and the text go at any time
        "MINSHENG_NOTIFY_QUIET_END": "00:00",
    }
    settings = process_settings(env)

    with services_running(["identity", "points", "issues", "notify"], env) as procs:
        staff = {"Authorization": f"Bearer {dev_token(settings, 'staff-1', ['staff'], ['*'])}"}
        identity, points, issues, notify = (procs[n].url for n in ("identity", "points", "issues", "notify"))
        standin = f"http://127.0.0.1:{standin_port}"
        async with httpx.AsyncClient(timeout=10) as http:

            async def received(channel: str) -> list[dict[str, Any]]:
                got: list[dict[str, Any]] = (await http.get(f"{standin}/_control/received")).json()["received"][channel]
                return got

            async def inbox(headers: dict[str, str], *rules: str) -> list[str] | None:
                items = (await http.get(f"{notify}/notify/inbox", headers=headers)).json()["items"]
                got = sorted(m["rule"] for m in items)
                return got if set(rules) <= set(got) else None

            # The rider signs in with WeChat (identity tells notify the openid), accepts the resolution template
            # and registers as a rider with that account.
            r = await http.post(f"{identity}/identity/wechat/login", json={"code": "kafka-rider.1"})
            assert r.status_code == 200, r.text
            account = r.json()["account"]["id"]
            rider = {"Authorization": f"Bearer {dev_token(settings, account, ['rider', 'resident'])}"}
            r = await http.post(
                f"{notify}/notify/subscriptions",
                headers=rider,
                json={"results": {"errMsg": "requestSubscribeMessage:ok", "TPL_ISSUE_RESOLVED": "accept"}},
            )
            assert r.status_code == 200, r.text
            r = await http.post(
                f"{points}/points/riders",
                headers=rider,
                json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678"},
            )
            assert r.status_code == 201, r.text

            # issues: the fire report becomes an urgent issue; the duty group's robot is told.
            r = await http.post(f"{points}/points/hazard-reports", headers=rider, json=FIRE)
            assert r.status_code == 201, r.text
            report = r.json()["id"]
            alert = await eventually(lambda: received("wecom"), within=60)
            assert alert[0]["markdown"]["content"].startswith("【紧急】yunxing yuntaiyuan 火情")
            page = (await http.get(f"{notify}/notify/deliveries", headers=staff, params={"channel": "wecom"})).json()
            assert "sent" in [d["status"] for d in page["items"]]

            # points: staff verify the fire; the points it earned reach the rider's inbox.
            async def issue_of_report() -> str | None:
                mine = (await http.get(f"{points}/points/hazard-reports/{report}", headers=rider)).json()
                return mine.get("issue_id")

            issue = await eventually(issue_of_report, within=30)
            r = await http.post(f"{issues}/issues/issues/{issue}/verify", headers=staff, json={"note": "seen"})
            assert r.status_code == 200, r.text
            await eventually(lambda: inbox(rider, "points_earned"), within=30)

            # issues: the resolution reaches the reporter's inbox and WeChat (one subscribe message).
            r = await http.post(f"{issues}/issues/issues/{issue}/resolve", headers=staff, json={"note": "out"})
            assert r.status_code == 200, r.text
            rules = await eventually(lambda: inbox(rider, "issue_resolved"), within=30)
            assert rules.count("issue_resolved") == 1 and rules.count("points_earned") == 1, rules
            [wechat] = await eventually(lambda: received("wechat"), within=30)
            assert wechat["touser"] == openid_for(identity_config.get().wechat_appid, "kafka-rider.1")
            assert wechat["template_id"] == "TPL_ISSUE_RESOLVED" and wechat["page"] == f"pages/issue/confirm?id={issue}"

            # visits and canteen: their events on their topics, as those services publish them.
            resident_sub, resident_id = f"kafka-resident-{uuid4().hex[:8]}", uuid4()
            producer = AIOKafkaProducer(bootstrap_servers=kafka[0])
            await producer.start()
            try:

                async def publish(event: IntegrationEvent, service: str) -> None:
                    envelope = wrap(event, service=service)
                    await producer.send_and_wait(
                        settings.kafka_prefix + event.topic,
                        envelope.model_dump_json(exclude_none=True).encode(),
                        key=envelope.partitionkey.encode(),
                    )

                linked = ResidentAccountLinked(
                    resident_id=resident_id, account_id=resident_sub, method="door_code", linked_at=utcnow()
                )
                await publish(linked, "visits")
                # The need is on another topic than the link: it must not overtake it into notify.
                conn = await pg_connect(settings.database_url_for("notify"))
                try:

                    async def link_known() -> bool:
                        found = await conn.fetchval(
                            "SELECT count(*) FROM record_links WHERE record = 'visits.resident' AND account_id = $1",
                            resident_sub,
                        )
                        return bool(found)

                    await eventually(link_known, within=30)
                finally:
                    await conn.close()
                await publish(progressed(uuid4(), resident_id, "raised", "open"), "visits")
                await publish(
                    absence_alert(FamilyContact(member_id=uuid4(), relation="son", phone="13912340077")), "canteen"
                )
            finally:
                await producer.stop()

            resident = {"Authorization": f"Bearer {dev_token(settings, resident_sub, ['resident'])}"}
            assert await eventually(lambda: inbox(resident, "need_recorded"), within=30) == ["need_recorded"]
            [sms] = await eventually(lambda: received("sms"), within=30)
            assert sms["phone"] == "+8613912340077" and sms["TemplateId"] == "1900001"
            assert sms["TemplateParamSet"] == ["3", "2026-12-02"]

            await asyncio.sleep(1.0)  # nothing more arrives
            assert [len(await received(c)) for c in ("wechat", "wecom", "sms")] == [1, 1, 1]
