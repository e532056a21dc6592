"""The runbook's backup and restore scripts, run against the compose deployment's databases (with the local
pg_dump/pg_restore instead of `docker compose exec postgres`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from minsheng import SERVICES
from tests.deploy.compose_local import ROOT
from tests.deploy.conftest import Deployment

pytestmark = pytest.mark.integration


def _psql(env: dict[str, str], database: str, sql: str) -> str:
    return subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_backup_then_restore_into_a_fresh_database(deployment: Deployment, tmp_path: Path) -> None:
    if not all(shutil.which(tool) for tool in ("pg_dump", "pg_restore", "psql")):
        pytest.skip("pg_dump/pg_restore/psql not installed (postgresql-client)")
    d = deployment
    rider = d.auth("rider", sub=f"rider-backup-{uuid.uuid4().hex[:6]}")
    r = httpx.post(
        f"{d.gateway}/points/riders",
        headers=rider,
        timeout=10,
        json={"name": "蓝骑士", "platform": "sf-express", "phone": "13700002222", "community": "yunxing"},
    )
    assert r.status_code == 201, r.text

    points_url = make_url(d.database_urls["points"])
    pattern = (points_url.database or "").replace("points", "%s")
    env = {
        **os.environ,
        "PG_EXEC": "",
        "PGHOST": points_url.host or "127.0.0.1",
        "PGPORT": str(points_url.port or 5432),
        "PGUSER": "postgres",
        "MINSHENG_DB_NAME_PATTERN": pattern,
    }
    out = subprocess.run(
        ["bash", str(ROOT / "deploy/ops/backup.sh"), str(tmp_path)], env=env, capture_output=True, text=True, check=True
    )
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert {p.name for p in folder.iterdir()} == {f"{s}.dump" for s in SERVICES} | {"TAKEN_AT"}

    # Restore points into a new, empty database owned by the points role, as after losing the volume.
    restored_pattern = pattern.replace("%s", "restored_%s")
    restored = restored_pattern % "points"
    _psql(env, "postgres", f'CREATE DATABASE "{restored}" OWNER "{points_url.username}"')
    try:
        subprocess.run(
            ["bash", str(ROOT / "deploy/ops/restore.sh"), str(folder), "points"],
            env={**env, "MINSHENG_DB_NAME_PATTERN": restored_pattern},
            check=True,
            capture_output=True,
            text=True,
        )
        restored_url = points_url.set(database=restored).render_as_string(hide_password=False)
        for table in ("riders", "outbox", "processed_events"):
            count = f"SELECT count(*) FROM {table}"
            assert _psql(env, restored, count) == _psql(env, points_url.database or "", count), table
        # The restored database is at the migration head: `minsheng migrate` has nothing to do.
        migrate = subprocess.run(
            [sys.executable, "-m", "minsheng.cli", "migrate", "points"],
            cwd=ROOT,
            env={**os.environ, **d.procs["points"].env, "MINSHENG_DATABASE_URL": restored_url},
            capture_output=True,
            text=True,
        )
        assert migrate.returncode == 0, migrate.stderr[-2000:]
    finally:
        _psql(env, "postgres", f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
