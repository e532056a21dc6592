"""Over Kafka, in separate ``minsheng serve`` processes (points, issues, notify; the notify process with its
provider stand-ins explicitly enabled): a rider's fire report reaches the duty group's WeCom robot."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.infra import LocalBroker, eventually, free_port
from tests.support.processes import dev_token, distributed_env, process_settings, services_running
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


async def test_fire_to_the_duty_group_across_processes(pg_template: str, kafka: tuple[str, LocalBroker | None]) -> None:
    standin_port = free_port()
    env = {
        **distributed_env(pg_template, kafka[0]),
        "MINSHENG_NOTIFY_STANDIN": "true",
        "MINSHENG_NOTIFY_STANDIN_PORT": str(standin_port),
    }
    settings = process_settings(env)

    with services_running(["identity", "points", "issues", "notify"], env) as procs:
        rider = {"Authorization": f"Bearer {dev_token(settings, 'rider-kafka', ['rider'])}"}
        staff = {"Authorization": f"Bearer {dev_token(settings, 'staff-1', ['staff'], ['*'])}"}
        points, notify = procs["points"].url, procs["notify"].url
        standin = f"http://127.0.0.1:{standin_port}"
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{points}/points/riders",
                headers=rider,
                json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678"},
            )
            assert r.status_code == 201, r.text
            assert (await http.post(f"{points}/points/hazard-reports", headers=rider, json=FIRE)).status_code == 201

            async def alert() -> dict[str, Any] | None:
                got = (await http.get(f"{standin}/_control/received")).json()["received"]["wecom"]
                return got[0] if got else None

            received = await eventually(alert, within=60)
            assert received["markdown"]["content"].startswith("【紧急】yunxing yuntaiyuan 火情")
            page = (await http.get(f"{notify}/notify/deliveries", headers=staff, params={"channel": "wecom"})).json()
            # (The broker is shared by the session: earlier tests' urgent issues may be alerted as well.)
            assert "sent" in [d["status"] for d in page["items"]]
