"""Migration ``0004_one_diner_per_id_number`` makes a diner's ID-number hash unique. A database that already holds
one elder as two diners (the race it closes) is not changed: the migration stops and says how many, and goes
through once the pair is resolved."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from minsheng.platform.db import Database, create_database_if_missing
from minsheng.platform.migrations import upgrade
from minsheng.platform.sql import table_of
from minsheng.runner import load_spec
from services.canteen.models import Canteen, Diner
from tests.conftest import embedded_settings
from tests.support.infra import database_template, drop_databases


async def _one_elder_as_two_diners(url: str, tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    spec = load_spec("canteen")
    db = Database(url, spec.tables)
    try:
        await upgrade(db, "canteen", spec.migrations_dir, "0003", settings=settings)
        canteen = Canteen(
            code="yunxing-street", name="云兴街道幸福食堂", address="云兴街道", community="yunxing", operator="街道"
        )
        twins = [
            Diner(canteen_id=canteen.id, name="赵桂香", birth_date=date(1941, 3, 8), community="yunxing", card_code=c)
            for c in ("CARD000001", "CARD000002")
        ]
        for diner in twins:
            diner.id_number_hash = "same-person"
        async with AsyncSession(db.engine, expire_on_commit=False) as session:
            session.add(canteen)
            await session.flush()
            session.add_all(twins)
            await session.commit()
        second = twins[1].id

        with pytest.raises(RuntimeError, match="1 ID number"):
            await upgrade(db, "canteen", spec.migrations_dir, "head", settings=settings)

        diners = table_of(Diner)
        async with db.engine.begin() as conn:
            await conn.execute(sa.update(diners).where(diners.c.id == second).values(id_number_hash=None))
        await upgrade(db, "canteen", spec.migrations_dir, "head", settings=settings)
        with pytest.raises(sa.exc.IntegrityError):
            async with db.engine.begin() as conn:
                await conn.execute(sa.update(diners).where(diners.c.id == second).values(id_number_hash="same-person"))
    finally:
        await db.dispose()


async def test_the_migration_refuses_one_elder_as_two_diners_on_sqlite(tmp_path: Path) -> None:
    await _one_elder_as_two_diners(f"sqlite+aiosqlite:///{tmp_path}/canteen.db", tmp_path)


@pytest.mark.integration
async def test_the_migration_refuses_one_elder_as_two_diners_on_postgres(tmp_path: Path, pg_base_url: str) -> None:
    template = database_template(pg_base_url)
    url = template.replace("{service}", "canteen")
    await create_database_if_missing(url)
    try:
        await _one_elder_as_two_diners(url, tmp_path)
    finally:
        await drop_databases(pg_base_url, template, ("canteen",))
