"""The issue's "done when" against ``minsheng run --demo`` itself (what ``bin/run`` executes): a process of its
own with the demo data and its default notify settings, driven only over HTTP — the API and the provider
stand-in's ``/_control/received``. Resolving an issue puts a message in the reporter's inbox and the WeChat
stand-in receives exactly one subscribe message for it; a rider's fire report reaches the duty group's WeCom
robot and the person on the demo's duty roster (a text: no WeChat subscription) by itself (how fast: bin/bench's
``notify.fire_to_duty_group``); an absence alert reaches the family by SMS.

Quiet hours are pinned off (``MINSHENG_NOTIFY_QUIET_START`` = ``_END``): with the default 22:00–07:00 a resolved
issue's WeChat message rightly waits until morning, and the test must not depend on the time of day."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from minsheng.localinfra.processes import stop_process, wait_answering
from minsheng.settings import Settings
from services.notify.demo import DEMO_DUTY_ACCOUNT, DEMO_DUTY_PHONE, demo_openid
from tests.issues.helpers import FLOOD
from tests.support.infra import free_port
from tests.support.processes import dev_token
from tests.unit.test_fire_flow import FIRE


class Demo:
    def __init__(self, base: str, standin: str, settings: Settings) -> None:
        self.base, self.standin, self.settings = base, standin, settings
        self.http = httpx.Client(base_url=base, timeout=10)

    def auth(self, role: str, sub: str, scopes: list[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {dev_token(self.settings, sub, [role], scopes)}"}

    def received(self, channel: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = httpx.get(f"{self.standin}/_control/received", timeout=5).json()["received"][
            channel
        ]
        return got

    def until(self, what: str, check: Any, within: float = 20.0) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if result := check():
                return result
            time.sleep(0.05)
        raise AssertionError(f"{what}: nothing within {within} s")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port, standin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINSHENG_")}
    env.update(
        MINSHENG_DATA_DIR=str(tmp_path),
        MINSHENG_NOTIFY_STANDIN_PORT=str(standin_port),  # fixed, so the test can ask it what it received
        MINSHENG_NOTIFY_QUIET_START="00:00",
        MINSHENG_NOTIFY_QUIET_END="00:00",
    )
    log = tempfile.NamedTemporaryFile(prefix="minsheng-run-demo-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsheng.cli", "run", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def tail() -> str:
        return Path(log.name).read_text(errors="replace")[-4000:]

    try:
        wait_answering(proc, "minsheng run --demo", f"http://127.0.0.1:{port}/readyz", tail, timeout=120)
        demo = Demo(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{standin_port}", Settings(data_dir=tmp_path))
        yield demo
        demo.http.close()
    finally:
        stop_process(proc)
        log.close()
        os.unlink(log.name)


def test_minsheng_run_demo_does_what_the_issue_asks(demo: Demo) -> None:
    http = demo.http
    # 1. A demo resident (the demo records her WeChat subscription) reports a flood; staff resolve it.
    me = demo.auth("resident", "demo-resident-1", ["community:yuntai", "compound:yuntaiyuan", "household:hh-1"])
    r = http.post("/issues/issues", headers=me, json=FLOOD)
    assert r.status_code == 201, r.text
    issue = r.json()["id"]
    desk = demo.auth("staff", "demo-staff", ["*"])
    r = http.post(f"/issues/issues/{issue}/resolve", headers=desk, json={"template": "fixed"})
    assert r.status_code == 200, r.text

    inbox = demo.until("the reporter's inbox", lambda: http.get("/notify/inbox", headers=me).json()["items"])
    assert [m["rule"] for m in inbox] == ["issue_resolved"]
    assert inbox[0]["link"] == f"pages/issue/confirm?id={issue}"
    assert http.get("/notify/inbox", headers=me).json()["unread"] == 1
    [wechat] = demo.until("the WeChat stand-in", lambda: demo.received("wechat"))
    assert wechat["touser"] == demo_openid("demo-resident-1") and wechat["template_id"] == "TPL_ISSUE_RESOLVED"
    assert wechat["page"] == f"pages/issue/confirm?id={issue}"

    # 2. A rider's fire report reaches the duty group's WeCom robot and the person on duty for Yunxing (the
    # demo's shift: an inbox entry and, without a WeChat subscription, a text). How fast: bin/bench's
    # ``notify.fire_to_duty_group`` (target ≤ 1 s); the guard here only stops a hang, the time is printed.
    rider = demo.auth("rider", "demo-notify-rider", [])
    r = http.post(
        "/points/riders",
        headers=rider,
        json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
    )
    assert r.status_code == 201, r.text
    started = time.perf_counter()
    assert http.post("/points/hazard-reports", headers=rider, json=FIRE).status_code == 201
    while not (alerts := demo.received("wecom")) or not (texts := demo.received("sms")):
        assert time.perf_counter() - started < 30.0, "no staff alert"
        time.sleep(0.01)
    took = time.perf_counter() - started
    [alert] = alerts
    assert alert["key"] == "standin-duty-robot" and alert["msgtype"] == "markdown"
    assert alert["markdown"]["content"].startswith("【紧急】yunxing yuntaiyuan 火情")
    [duty_sms] = texts
    assert duty_sms["phone"] == f"+86{DEMO_DUTY_PHONE}" and duty_sms["TemplateId"] == "1900003"
    on_duty = demo.auth("staff", DEMO_DUTY_ACCOUNT, ["community:yunxing"])
    assert [m["rule"] for m in http.get("/notify/inbox", headers=on_duty).json()["items"]] == ["urgent_issue_on_duty"]
    print(f"\nminsheng run --demo: fire report → duty robot and on-duty staff's SMS in {took * 1000:.0f} ms")

    # 3. 赵 stopped coming to the canteen: the county runs the absence scan; her son gets a text.
    county = demo.auth("staff", "demo-county", ["*"])
    r = http.post("/canteen/care/scan", headers=county)
    assert r.status_code == 200, r.text
    [_, sms] = demo.until("the family's SMS", lambda: (got := demo.received("sms"))[1:] and got)
    assert sms["phone"] == "+8613935209901" and sms["TemplateId"] == "1900001"

    # Nothing more arrives: one subscribe message for the resolution, one robot alert and one text for the fire,
    # one text for the absence.
    time.sleep(1.5)
    assert [len(demo.received(c)) for c in ("wechat", "wecom", "sms")] == [1, 1, 2]
