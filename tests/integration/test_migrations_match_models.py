"""Each service's migrations build the schema its models declare: after ``upgrade head`` Alembic's comparison
(the one ``alembic revision --autogenerate`` runs) finds no table, column, type, index or constraint to add,
drop or change — on SQLite and on PostgreSQL. A model changed without a migration, or a refactor of the models
that moves a column's index, fails here instead of in a deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from minsheng.platform.db import Database
from minsheng.platform.migrations import upgrade
from minsheng.runner import load_spec
from tests.conftest import embedded_settings

SERVICES = ("canteen", "identity", "issues", "notify", "points", "visits")


async def _differences(url: str, service: str, tmp_path: Path) -> list[Any]:
    spec = load_spec(service)
    db = Database(url.replace("{service}", service), spec.tables)
    try:
        await upgrade(db, service, spec.migrations_dir, settings=embedded_settings(tmp_path))

        def compare(conn: sa.Connection) -> list[Any]:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": f"alembic_version_{service}"}
            )
            return list(compare_metadata(context, spec.metadata))

        async with db.engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await db.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_build_what_the_models_declare_on_sqlite(service: str, tmp_path: Path) -> None:
    assert await _differences(f"sqlite+aiosqlite:///{tmp_path}/{{service}}.db", service, tmp_path) == []


@pytest.mark.integration
async def test_the_migrations_build_what_the_models_declare_on_postgresql(tmp_path: Path, pg_template: str) -> None:
    found = {service: await _differences(pg_template, service, tmp_path) for service in SERVICES}
    assert {service: diff for service, diff in found.items() if diff} == {}, found
