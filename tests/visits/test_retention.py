"""PIPL retention: residents moved away or deceased longer than the retention period lose their phone, ID
number and health notes; the job audits it, keeps their history, and changes nothing on a second run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from minsheng.platform.sql import table_of
from services.visits import config, idcard, jobs
from services.visits.models import Need, PiiAudit, Resident, Visit
from tests.conftest import alone_on_postgres, embedded_settings
from tests.support.client import System, running_system
from tests.visits.helpers import build_place

SENSITIVE = ("phone", "id_number_enc", "id_number_hash", "id_number_masked", "health_notes_enc")


@pytest.fixture
async def visits(tmp_path: Path) -> AsyncIterator[System]:
    """The visits service alone, embedded (SQLite + in-process bus)."""
    async with running_system(embedded_settings(tmp_path), services=("visits",)) as s:
        yield s


async def _rows(s: System, table: Any) -> list[dict[str, Any]]:
    async with s.runtime("visits").db.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(table))).mappings().all()]


@pytest.fixture
async def pg_visits(tmp_path: Path, pg_base_url: str) -> AsyncIterator[System]:
    """The visits service alone on a fresh PostgreSQL database."""
    async with alone_on_postgres(tmp_path, pg_base_url, "visits") as s:
        yield s


async def test_residents_gone_past_retention_lose_personal_data_and_nothing_else(visits: System) -> None:
    await _scenario(visits)


@pytest.mark.integration
async def test_retention_on_postgres_with_replicas_racing(pg_visits: System) -> None:
    await _scenario(pg_visits, replicas=3)


async def _scenario(s: System, replicas: int = 1) -> None:
    assert config.get().pii_retention_days == 365
    assert [j.name for j in jobs.jobs() if "retention" in j.name] == ["pii-retention"]
    p = await build_place(s)
    today = config.today()
    people = {"recent": "13935201102", "active": "13935201103"}
    ids = {}
    for n, (who, phone) in enumerate(people.items()):
        _, rid = await p.household(
            f"60{n}",
            name=f"钱{who}",
            phone=phone,
            health_notes="高血压",
            id_number=idcard.make("140226", date(1940, 1, 1 + n), 30 + n),
        )
        assert rid is not None
        ids[who] = rid
    # History for 赵: a visit with a need raised for her.
    await p.post(
        "/visits",
        p.worker,
        {
            "household_id": p.household_id,
            "outcome": "visited",
            "needs": [{"category": "mobility_aid", "title": "需要助行器", "resident_id": p.zhao_id}],
        },
        201,
    )
    await p.post(
        f"/residents/{p.zhao_id}/status",
        p.staff,
        {"status": "deceased", "effective_date": str(today - timedelta(days=400))},
    )
    await p.post(
        f"/residents/{ids['recent']}/status",
        p.staff,
        {"status": "moved", "effective_date": str(today - timedelta(days=30))},
    )
    table = table_of(Resident)
    before = {str(r["id"]): r for r in await _rows(s, table)}
    assert all(before[i][f] is not None for i in (p.zhao_id, *ids.values()) for f in SENSITIVE)
    visits_before = await _rows(s, table_of(Visit))
    needs_before = await _rows(s, table_of(Need))

    runs = await asyncio.gather(*(jobs.pii_retention(s.runtime("visits")) for _ in range(replicas)))
    assert sum(runs) == 1
    after = {str(r["id"]): r for r in await _rows(s, table)}
    assert all(after[p.zhao_id][f] is None for f in SENSITIVE)
    for rid in ids.values():
        assert {f: after[rid][f] for f in SENSITIVE} == {f: before[rid][f] for f in SENSITIVE}
    zhao = after[p.zhao_id]
    assert (zhao["name"], zhao["status"], zhao["mobility"]) == ("赵桂香", "deceased", "needs_aid")
    assert zhao["status_effective_date"] == today - timedelta(days=400)
    assert await _rows(s, table_of(Visit)) == visits_before
    assert await _rows(s, table_of(Need)) == needs_before
    purges = [r for r in await _rows(s, table_of(PiiAudit)) if r["action"] == "purge"]
    assert [(str(r["resident_id"]), r["actor"], sorted(r["fields"])) for r in purges] == [
        (p.zhao_id, "system:pii-retention", ["health_notes", "id_number", "phone"])
    ]

    # A second run (another replica, the next hour) changes nothing more.
    assert await jobs.pii_retention(s.runtime("visits")) == 0
    assert {str(r["id"]): r for r in await _rows(s, table)} == after
    assert len([r for r in await _rows(s, table_of(PiiAudit)) if r["action"] == "purge"]) == 1

    # The API still answers for her: empty masked fields, a reveal answers nulls (and is audited).
    r = await p.get(f"/residents/{p.zhao_id}", p.staff)
    assert (r["name"], r["phone"], r["id_number"], r["has_health_notes"]) == ("赵桂香", None, None, False)
    officer = s.auth("staff", sub="officer-li", scopes=["community:yuntai", "pii:reveal", "pii:audit"])
    out = await p.post(
        f"/residents/{p.zhao_id}/reveal",
        officer,
        {"fields": ["phone", "id_number", "health_notes"], "reason": "核对身后事宜"},
    )
    assert (out["phone"], out["id_number"], out["health_notes"]) == (None, None, None)
    audit = await p.get("/pii-audit", officer, params={"resident_id": p.zhao_id})
    assert {a["action"] for a in audit["items"]} == {"reveal", "purge"}
    listed = await p.get("/residents", p.staff, params={"status": "deceased"})
    assert [x["id"] for x in listed["items"]] == [p.zhao_id]
    bill = await p.get(f"/households/{p.household_id}/bill", p.staff)
    assert bill["raised"] == 1
