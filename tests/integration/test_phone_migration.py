"""Migrations ``0002_phones_sealed`` convert the phones already stored, on SQLite and on PostgreSQL: masked in
place, encrypted bound to the row, keyed hash beside; a downgrade puts them back in clear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from minsheng.platform.db import Database
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.migrations import upgrade
from minsheng.platform.privacy import aad_of, field_cipher
from minsheng.runner import load_spec
from tests.conftest import embedded_settings

PHONES = ["13900000001", "13900000002", None]


async def _downgrade(db: Database, service: str, migrations_dir: Path, settings: Any) -> None:
    from alembic import command

    from minsheng.platform.migrations import alembic_config

    cfg = alembic_config(service, migrations_dir)
    cfg.attributes["settings"] = settings

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "0001")

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


async def _convert(url: str, tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    cipher = field_cipher(settings)
    for service, table, attr, extra in [
        ("visits", "grid_workers", "phone", {"name": "网格员", "community": "yuntai", "active": True}),
        (
            "points",
            "merchants",
            "contact_phone",
            {
                "name": "面馆",
                "category": "restaurant",
                "void_window_minutes": 30,
                "status": "active",
                "updated_at": utcnow(),
            },
        ),
    ]:
        spec = load_spec(service)
        db = Database(url.replace("{service}", service), spec.tables)
        try:
            await upgrade(db, service, spec.migrations_dir, "0001", settings=settings)
            ids = [uuid7() for _ in PHONES]
            rows: list[dict[str, Any]] = [
                {"id": i, attr: p, "created_at": utcnow(), **extra} for i, p in zip(ids, PHONES, strict=True)
            ]
            if table == "grid_workers":
                for n, r in enumerate(rows):
                    r["subject"] = f"gw-{n}-{r['id']}"
            t = sa.table(table, *[sa.column(k, sa.Uuid() if k == "id" else None) for k in rows[0]])
            async with db.engine.begin() as conn:
                await conn.execute(sa.insert(t), rows)
            await upgrade(db, service, spec.migrations_dir, "head", settings=settings)
            full = spec.metadata.tables[table]
            async with db.engine.connect() as conn:
                stored = {
                    r.id: r
                    for r in (
                        await conn.execute(
                            sa.select(full.c.id, full.c[attr], full.c[f"{attr}_enc"], full.c[f"{attr}_hash"])
                        )
                    ).all()
                }
            for i, phone in zip(ids, PHONES, strict=True):
                row = stored[i]
                if phone is None:
                    assert row[1] is None and row[2] is None and row[3] is None
                    continue
                assert row[1] == phone[:3] + "****" + phone[-4:], row
                assert row[2].startswith("v2:k1:") and phone not in row[2]
                assert cipher.decrypt(row[2], aad=aad_of(table, f"{attr}_enc", i)) == phone
                assert row[3] == cipher.lookup_hash(phone)
            await upgrade(db, service, spec.migrations_dir, "head", settings=settings)  # idempotent
            await _downgrade(db, service, spec.migrations_dir, settings)
            t_old = sa.table(table, sa.column("id", sa.Uuid()), sa.column(attr))
            async with db.engine.connect() as conn:
                back = dict((await conn.execute(sa.select(t_old.c.id, t_old.c[attr]))).all())
            assert [back[i] for i in ids] == PHONES  # the downgrade puts them back in clear
        finally:
            await db.dispose()


async def test_the_phone_migrations_convert_existing_rows_on_sqlite(tmp_path: Path) -> None:
    await _convert(f"sqlite+aiosqlite:///{tmp_path}/{{service}}.db", tmp_path)


@pytest.mark.integration
async def test_the_phone_migrations_convert_existing_rows_on_postgresql(tmp_path: Path, pg_template: str) -> None:
    await _convert(pg_template, tmp_path)
