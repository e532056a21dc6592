"""The fire flow across four separate ``minsheng serve`` processes over PostgreSQL and the broker —
exactly how the distributed mode runs, minus the containers."""

from __future__ import annotations

import httpx
import pytest

from minsheng.platform.auth import mint_token
from minsheng.settings import Settings
from tests.support.infra import LocalBroker, becomes, eventually
from tests.support.processes import distributed_env, services_running
from tests.unit.test_fire_flow import FIRE

pytestmark = pytest.mark.integration


async def test_fire_flow_across_four_processes(pg_template: str, kafka: tuple[str, LocalBroker | None]) -> None:
    env = distributed_env(pg_template, kafka[0])
    settings = Settings(mode="distributed", database_url=pg_template, jwt_secret=env["MINSHENG_JWT_SECRET"],
                        field_encryption_key=env["MINSHENG_FIELD_ENCRYPTION_KEY"])
    rider = {"Authorization": f"Bearer {mint_token(settings, 'rider-fan', ['rider'])}"}
    staff = {"Authorization": f"Bearer {mint_token(settings, 'staff-1', ['staff'], ['community:yunxing'])}"}

    with services_running(["visits", "issues", "points", "canteen"], env) as procs:
        points, issues = procs["points"].url, procs["issues"].url
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{points}/points/riders", headers=rider,
                                json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678"})
            assert r.status_code == 201, r.text
            report = (await http.post(f"{points}/points/hazard-reports", headers=rider, json=FIRE)).json()

            async def issue_for_report() -> dict | None:
                items = (await http.get(f"{issues}/issues/issues", headers=staff)).json()["items"]
                return next((i for i in items if i["origin_id"] == report["id"]), None)

            issue = await eventually(issue_for_report, within=45)
            assert issue["urgent"] is True and issue["channel"] == "rider"

            r = await http.post(f"{issues}/issues/issues/{issue['id']}/verify", headers=staff)
            assert r.status_code == 200, r.text

            async def balance() -> int:
                body = (await http.get(f"{points}/points/riders/me/balance", headers=rider)).json()
                return body["balance"]  # type: ignore[no-any-return]

            await becomes(balance, 20, within=45)
            mine = (await http.get(f"{points}/points/hazard-reports/{report['id']}", headers=rider)).json()
            assert mine["status"] == "verified" and mine["issue_id"] == issue["id"]

