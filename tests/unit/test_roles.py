"""``minsheng serve <service> --role``: each role runs only its part (embedded mode: SQLite, in-process bus)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.tokens import KeyRing
from minsheng.runner import build_app
from minsheng.settings import Settings
from tests.conftest import embedded_settings
from tests.support.client import System, running_system
from tests.unit.test_fire_flow import FIRE, register_rider


def _task_names(runtime: ServiceRuntime) -> set[str]:
    return {task.get_name().removeprefix(f"{runtime.name}-") for task in runtime._tasks}


def _jobs(service: str, settings: Settings) -> set[str]:
    from minsheng.runner import load_spec

    spec = load_spec(service)
    return {job.name for job in ServiceRuntime(spec, settings, InProcessBus()).jobs_to_run()}


@pytest.mark.parametrize(
    ("role", "relay", "consumes", "deployment_jobs"),
    [
        ("all", True, True, True),
        ("web", False, False, False),
        ("relay", True, False, True),
        ("consumer", False, True, False),
    ],
)
async def test_each_role_starts_only_its_parts(
    tmp_path: Path, role: str, relay: bool, consumes: bool, deployment_jobs: bool
) -> None:
    bus = InProcessBus()
    settings = embedded_settings(tmp_path, role=role)
    app = build_app(settings, ["issues"], bus=bus, keyring=KeyRing.ephemeral())
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtimes["issues"]
        names = _task_names(runtime)
        assert ("outbox-relay" in names) is relay
        assert bool(bus._subs) is consumes
        assert ({"issues-overdue-sweep", "housekeeping"} <= names) is deployment_jobs
        assert runtime.jobs_enabled is deployment_jobs
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/healthz")).json()["status"] == "ok"
            assert "minsheng_db_up" in (await client.get("/metrics")).text
            api = await client.get("/issues/openapi.json")
            assert (api.status_code == 200) is (role in ("all", "web"))


def test_jobs_run_once_per_deployment_and_per_process_jobs_where_the_api_is_served(tmp_path: Path) -> None:
    def jobs(service: str, role: str) -> set[str]:
        return _jobs(service, embedded_settings(tmp_path, role=role))

    deployment = {
        "issues-overdue-sweep",
        "issues-auto-confirm",
        "issues-vote-announcements",
        "issues-photos-out-of-database",
        "housekeeping",
    }
    assert jobs("issues", "all") == jobs("issues", "relay") == deployment
    assert jobs("issues", "web") == jobs("issues", "consumer") == set()
    # The identity's key ring is state of each process that signs tokens: reloaded where the API is served.
    assert jobs("identity", "web") == {"reload-keys"}
    assert jobs("identity", "relay") == {"purge", "housekeeping"}
    assert jobs("identity", "all") == {"reload-keys", "purge", "housekeeping"}
    # Split, every job runs in exactly one role.
    for service in ("issues", "identity", "notify", "points", "canteen", "visits"):
        split = [jobs(service, role) for role in ("web", "relay", "consumer")]
        assert set().union(*split) == jobs(service, "all")
        assert sum(len(s) for s in split) == len(jobs(service, "all"))


async def test_a_background_role_is_not_ready_while_its_database_does_not_answer(tmp_path: Path) -> None:
    bus = InProcessBus()
    app = build_app(embedded_settings(tmp_path, role="consumer"), ["issues"], bus=bus)
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtimes["issues"]

        async def down() -> bool:
            return False

        runtime.db.ping = down  # type: ignore[method-assign]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": False, "started": True} and r.json()["role"] == "consumer"


def test_a_background_role_runs_one_service() -> None:
    with pytest.raises(ValueError, match="one service"):
        build_app(Settings(mode="embedded", role="relay"), ["issues", "points"])


async def test_the_fire_flow_works_with_web_relay_and_consumer_apart(tmp_path: Path) -> None:
    """points and issues, each split in three apps on one bus and one data dir: the report is taken by the web
    role, published by the relay role, and turned into an issue by the consumer role."""
    bus = InProcessBus()
    apps = [
        build_app(embedded_settings(tmp_path, role=role), [service], bus=bus)
        for service in ("points", "issues")
        for role in ("relay", "consumer")
    ]
    web_role = running_system(embedded_settings(tmp_path, role="web"), ["points", "issues"], bus=bus)
    async with web_role as web, contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        await _fire_report_becomes_an_issue(web)


async def _fire_report_becomes_an_issue(web: System) -> None:
    rider = await register_rider(web)
    r = await web.client.post("/points/hazard-reports", headers=rider, json=FIRE)
    assert r.status_code == 201, r.text
    issues_db = web.runtime("issues").db
    for _ in range(100):
        async with issues_db.engine.connect() as conn:
            found = (await conn.execute(sa.text("SELECT count(*) FROM issues"))).scalar_one()
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == 1
    # The web role itself neither relays nor consumes.
    assert not web.runtime("points")._tasks and not web.runtime("issues")._tasks


def test_the_serve_command_refuses_what_a_role_cannot_do() -> None:
    from typer.testing import CliRunner

    from minsheng.cli import app

    runner = CliRunner()
    refused = runner.invoke(app, ["serve", "issues", "--role", "relay", "--demo"])
    assert refused.exit_code == 2 and "web role" in refused.output
    unknown = runner.invoke(app, ["serve", "issues", "--role", "worker"])
    assert unknown.exit_code == 2 and "worker" in unknown.output
