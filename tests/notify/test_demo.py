"""The issue's "done when", on the demo (``bin/run --demo`` builds the same app): resolving an issue puts a
message in the reporter's inbox and the WeChat stand-in receives one subscribe message; an urgent fire reaches
the on-duty staff's channel by itself (how fast: bin/bench's ``notify.fire_to_duty_group``); an absence alert
reaches the family by SMS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.canteen.jobs import scan_absences
from services.notify import config
from services.notify.demo import DEMO_DUTY_ACCOUNT, DEMO_DUTY_PHONE, demo_openid
from tests.conftest import embedded_settings
from tests.issues.helpers import FLOOD, act, report, resident
from tests.notify.helpers import flush, received
from tests.support.client import System, running_system
from tests.unit.test_fire_flow import FIRE, register_rider


@pytest.fixture
async def demo(tmp_path: Path, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    async with running_system(embedded_settings(tmp_path), demo=True) as s:
        yield s


async def test_the_demo_does_what_the_issue_asks(demo: System) -> None:
    s = demo
    # 1. A demo resident (subscribed in the mini-program) reports; staff resolve; one WeChat message.
    me = resident(s, "demo-resident-1")
    issue = await report(s, me, FLOOD)
    await act(s, issue["id"], "resolve", s.auth("staff", sub="demo-staff", scopes=["*"]), {"template": "fixed"})
    await flush(s)
    inbox = (await s.client.get("/notify/inbox", headers=me)).json()
    assert [m["rule"] for m in inbox["items"]] == ["issue_resolved"] and inbox["unread"] == 1
    [wechat] = received(s, "wechat")
    assert wechat["touser"] == demo_openid("demo-resident-1") and wechat["template_id"] == "TPL_ISSUE_RESOLVED"

    # 2. A rider's fire report reaches the duty group's WeCom robot and the person on duty (the demo's shift
    # for Yunxing; no WeChat subscription, so a text) by the background workers alone. How fast: bin/bench's
    # ``notify.fire_to_duty_group`` (target ≤ 1 s); the guard here only stops a hang.
    rider = await register_rider(s, "demo-notify-rider")
    started = time.perf_counter()
    assert (await s.client.post("/points/hazard-reports", headers=rider, json=FIRE)).status_code == 201
    while not (received(s, "wecom") and received(s, "sms")):
        assert time.perf_counter() - started < 30.0, "no staff alert"
        await asyncio.sleep(0.005)
    [duty_sms] = received(s, "sms")
    assert duty_sms["phone"] == f"+86{DEMO_DUTY_PHONE}" and duty_sms["TemplateId"] == "1900003"
    duty = (await s.client.get("/notify/inbox", headers=s.auth("staff", sub=DEMO_DUTY_ACCOUNT, scopes=["*"]))).json()
    assert [m["rule"] for m in duty["items"]] == ["urgent_issue_on_duty"]

    # 3. 赵 stopped coming to the canteen: the scan raises the alert, her son gets a text.
    result = await scan_absences(s.runtime("canteen"))
    assert result.raised == 1
    await flush(s)
    [_, sms] = received(s, "sms")
    assert sms["phone"] == "+8613935209901" and sms["TemplateId"] == "1900001"
    assert [len(received(s, c)) for c in ("wechat", "wecom", "sms")] == [1, 1, 2]
