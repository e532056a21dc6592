"""The `minsheng` command: the embedded runner, tokens, migrations, outbox and dead-letter tools."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from minsheng import SERVICES
from minsheng.cli import app
from minsheng.platform.auth import decode_token
from minsheng.platform.ids import utcnow, uuid7
from minsheng.runner import load_spec
from minsheng.settings import Settings
from tests.support.infra import free_port

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINSHENG_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MINSHENG_DATABASE_URL", raising=False)
    return tmp_path


def test_token_mints_a_jwt_with_roles_and_scopes(data_dir: Path) -> None:
    result = runner.invoke(app, ["token", "--role", "staff", "--sub", "staff-7", "--scope", "community:yunxing"])
    assert result.exit_code == 0, result.output
    principal = asyncio.run(_verify_with_key_store(Settings(), result.stdout.strip()))
    assert principal.sub == "staff-7" and principal.scopes == ("community:yunxing",)
    assert principal.amr == ("dev",)
    assert runner.invoke(app, ["token", "--role", "emperor"]).exit_code != 0
    assert runner.invoke(app, ["token", "--role", "staff", "--scope", "community:x *"]).exit_code != 0


async def _verify_with_key_store(settings: Settings, token: str) -> Any:
    """Verify a token against the keys in the identity database, as the identity service would."""
    from minsheng.platform.auth import make_verifier
    from minsheng.platform.db import Database
    from minsheng.platform.privacy import field_cipher
    from minsheng.platform.tokens import KeyRing
    from services.identity.keys import read_keys

    db = Database(settings.database_url_for("identity"), load_spec("identity").tables)
    try:
        ring = KeyRing(await read_keys(db, field_cipher(settings)))
    finally:
        await db.dispose()
    return await decode_token(make_verifier(ring, settings), token)


def test_token_refuses_a_scope_value_with_whitespace(data_dir: Path) -> None:
    # "community:x *" would be one string in the JWT's space-separated scope claim: two scopes, one of them "*".
    for bad in ["community:x *", "community:x\t*", " ", "community:\nx"]:
        result = runner.invoke(app, ["token", "--role", "staff", "--scope", bad])
        assert result.exit_code != 0, bad
        assert "whitespace" in result.output
    assert runner.invoke(app, ["token", "--role", "staff", "--scope", "community:x", "--scope", "*"]).exit_code == 0


def test_migrate_outbox_status_and_dead_letters(data_dir: Path) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in data_dir.glob("*.db")} == {f"{s}.db" for s in SERVICES}
    assert runner.invoke(app, ["migrate", "points"]).exit_code == 0  # idempotent

    status = runner.invoke(app, ["outbox", "status", "points"])
    assert status.exit_code == 0 and "pending=0 sent=0" in status.output

    # A dead letter, as the consumer would have left it: a HazardReported event the issues service failed on.
    report_id = str(uuid7())
    event = {
        "specversion": "1.0",
        "id": str(uuid7()),
        "source": "/services/points",
        "type": "minsheng.points.hazard.reported.v1",
        "time": utcnow().isoformat(),
        "partitionkey": report_id,
        "data": {
            "report_id": report_id,
            "rider_id": str(uuid7()),
            "category": "gas_leak",
            "urgent": True,
            "description": "smell of gas",
            "reported_at": utcnow().isoformat(),
        },
    }
    spec = load_spec("issues")

    async def insert_dead_letter() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'issues.db'}")
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(spec.tables.dead_letters).values(
                    id=uuid7(),
                    event_id=event["id"],
                    event_type=event["type"],
                    topic="points.hazard",
                    key=report_id,
                    payload=json.dumps(event),
                    headers={},
                    error="RuntimeError: boom",
                    attempts=5,
                    created_at=utcnow(),
                )
            )
        await engine.dispose()

    asyncio.run(insert_dead_letter())
    listed = runner.invoke(app, ["dlq", "list", "issues"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["error"] == "RuntimeError: boom"

    replayed = runner.invoke(app, ["dlq", "replay", "issues"])
    assert replayed.exit_code == 0 and "handled" in replayed.output
    assert runner.invoke(app, ["dlq", "list", "issues"]).output == ""

    status = runner.invoke(app, ["outbox", "status", "issues"])
    assert "pending=1" in status.output  # the replayed handler's IssueCreated awaits the running relay


def test_run_serves_every_service_on_one_port_with_docs(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MINSHENG_DATA_DIR": str(tmp_path)}
    env.pop("MINSHENG_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "minsheng.cli", "run", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "minsheng run did not become ready"
            time.sleep(0.2)
        landing = httpx.get(f"http://127.0.0.1:{port}/").text
        for name in ("visits", "issues", "points", "canteen"):
            assert f"/{name}/docs" in landing
            assert httpx.get(f"http://127.0.0.1:{port}/{name}/docs").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}/{name}/openapi.json").json()["openapi"].startswith("3.")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
