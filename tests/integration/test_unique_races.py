"""A request that passes a use case's "does it exist already?" check, and then loses the race to the unique
constraint because a concurrent request committed the same value first, answers the check's own code
(``community_exists``, ``department_exists`` …), not the generic ``concurrent_change`` or ``already_exists``.

The race is made deterministic by blinding the check: the existing row is there, the check does not see it,
the commit hits the constraint. Both ways a view commits are covered (canteen and visits through
``commit_or_conflict``, issues through the app's ``IntegrityError`` handler), on SQLite and on PostgreSQL,
whose drivers name the broken constraint differently."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng import SERVICES
from minsheng.platform.db import broken_unique, create_database_if_missing
from minsheng.platform.errors import UniqueRule, unique_rule_broken
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.sql import table_of
from minsheng.runner import load_spec
from services.canteen import diners
from services.issues.models import Department
from services.visits import places
from tests.canteen.helpers import county, id_number, make_canteen, make_diner
from tests.issues.helpers import manager
from tests.support.client import System
from tests.support.infra import database_template, drop_databases


@contextlib.contextmanager
def blind_get(monkeypatch: pytest.MonkeyPatch, model: type[SQLModel]) -> Iterator[None]:
    """``session.get(model, …)`` finds nothing, as for a request that read before its rival committed."""
    real_get = AsyncSession.get

    async def get(self: AsyncSession, entity: Any, ident: Any, **kw: Any) -> Any:
        return None if entity is model else await real_get(self, entity, ident, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(AsyncSession, "get", get)
        yield


async def _nothing(*_: Any, **__: Any) -> None:
    return None


async def community_race(s: System, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = s.auth("admin", sub="admin")
    body = {"code": "race-community", "name": "抢注社区"}
    assert (await s.client.post("/visits/communities", headers=admin, json=body)).status_code == 201
    with monkeypatch.context() as patch:
        patch.setattr(places, "community_by_code", _nothing)
        r = await s.client.post("/visits/communities", headers=admin, json=body)
    assert r.status_code == 409 and r.json()["code"] == "community_exists", r.text
    assert r.json()["detail"] == "已有使用此编码的社区。"  # the rule's own text, in the default locale


async def department_race(s: System, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"code": "race_desk", "name_zh": "抢注科室", "name_en": "Raced desk"}
    assert (await s.client.post("/issues/catalogue/departments", headers=manager(s), json=body)).status_code == 201
    with blind_get(monkeypatch, Department):
        r = await s.client.post("/issues/catalogue/departments", headers=manager(s), json=body)
    assert r.status_code == 409 and r.json()["code"] == "department_exists", r.text


async def register_diner(s: System, canteen_id: str, **fields: str) -> httpx.Response:
    body = {"canteen_id": canteen_id, "community": "yunxing", **fields}
    return await s.client.post("/canteen/diners", headers=county(s), json=body)


async def diner_login_race(s: System, monkeypatch: pytest.MonkeyPatch) -> None:
    canteen = await make_canteen(s)
    await make_diner(s, canteen["id"], subject="wx-race")
    with monkeypatch.context() as patch:
        patch.setattr(diners, "_subject_free", _nothing)
        r = await register_diner(s, canteen["id"], name="钱秀英", birth_date="1943-05-01", subject="wx-race")
    assert r.status_code == 409 and r.json()["code"] == "subject_taken", r.text


async def diner_id_number_race(s: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the constraint, both registrations of one elder succeeded: two diners, two subsidy allowances."""
    canteen = await make_canteen(s)
    number = id_number(date(1941, 3, 8))
    first = await make_diner(s, canteen["id"], id_number=number)
    with monkeypatch.context() as patch:
        patch.setattr(FieldCipher, "lookup_hashes", lambda self, value: [])
        r = await register_diner(s, canteen["id"], name=first["name"], birth_date=first["birth_date"], id_number=number)
    assert r.status_code == 409 and r.json()["code"] == "diner_exists", r.text
    assert [d["id"] for d in (await s.client.get("/canteen/diners", headers=county(s))).json()["items"]] == [
        first["id"]
    ]


RACES = [community_race, department_race, diner_login_race, diner_id_number_race]


@pytest.mark.parametrize("race", RACES, ids=lambda race: race.__name__)
async def test_a_lost_unique_race_answers_the_checks_code(
    system: System, monkeypatch: pytest.MonkeyPatch, race: Any
) -> None:
    await race(system, monkeypatch)


@pytest.mark.integration
@pytest.mark.parametrize("race", RACES, ids=lambda race: race.__name__)
async def test_a_lost_unique_race_answers_the_checks_code_on_postgres(
    pg_system: System, monkeypatch: pytest.MonkeyPatch, race: Any
) -> None:
    await race(pg_system, monkeypatch)


@pytest.mark.parametrize("service", SERVICES)
def test_every_unique_rule_names_a_unique_constraint_of_its_table(service: str) -> None:
    """A rule whose columns no constraint holds would never answer: a typo, or a constraint since changed."""
    metadata = load_spec(service).metadata
    for (table_name, columns), rule in metadata.info.get("minsheng.unique_rules", {}).items():
        table = metadata.tables[table_name]
        unique = [frozenset(table.primary_key.columns.keys())]
        unique += [frozenset(c.columns.keys()) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        unique += [frozenset(i.columns.keys()) for i in table.indexes if i.unique]
        unique += [frozenset([c.name]) for c in table.columns if c.unique]
        assert columns in unique, f"{rule.code}: {table_name}{sorted(columns)} is not unique"


def test_a_table_answers_one_code_per_unique_rule() -> None:
    class Scratch(SQLModel, registry=registry()):
        pass

    class Rival(Scratch, table=True):
        id: int = Field(primary_key=True)
        code: str = Field(unique=True)

    UniqueRule(Rival, ["code"], "rival_exists", "A rival with this code exists.")
    UniqueRule(Rival, ["code"], "rival_exists", "The same rule again, from a reloaded module.")
    with pytest.raises(ValueError, match="already answers rival_exists"):
        UniqueRule(Rival, ["code"], "rival_taken", "Another code for the same rule.")
    with pytest.raises(ValueError, match="no column"):
        UniqueRule(Rival, ["name"], "rival_name_taken", "A column the table does not have.")


@pytest.fixture
async def scratch_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """SQLite, or (for the ``postgres`` parameter) a database of its own on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/scratch.db"
        return
    base = request.getfixturevalue("pg_base_url")
    template = database_template(base)
    url = template.replace("{service}", "uniques")
    await create_database_if_missing(url)
    try:
        yield url
    finally:
        await drop_databases(base, template, ("uniques",))


@pytest.mark.parametrize(
    "scratch_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)], indirect=True
)
async def test_the_broken_constraint_is_read_from_either_drivers_error(scratch_url: str) -> None:
    metadata = sa.MetaData()
    doors = sa.Table(
        "doors",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("building", sa.String(20), nullable=False),
        sa.Column("room", sa.String(20), nullable=False),
        sa.Column("parent", sa.Integer, sa.ForeignKey("doors.id")),
        sa.UniqueConstraint("building", "room", name="uq_door"),
    )
    engine = create_async_engine(scratch_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(sa.insert(doors), [{"id": 1, "building": "3号楼", "room": "501"}])

        async def refused(row: dict[str, Any]) -> sa.exc.IntegrityError:
            with pytest.raises(sa.exc.IntegrityError) as caught:
                async with engine.begin() as conn:
                    await conn.execute(sa.insert(doors), [row])
            return caught.value

        door = await refused({"id": 2, "building": "3号楼", "room": "501"})
        assert broken_unique(door) == ("doors", frozenset({"building", "room"}))
        same_id = await refused({"id": 1, "building": "4号楼", "room": "101"})
        assert broken_unique(same_id) == ("doors", frozenset({"id"}))
        if not scratch_url.startswith("sqlite"):  # SQLite leaves foreign keys unchecked unless asked
            orphan = await refused({"id": 3, "building": "4号楼", "room": "101", "parent": 99})
            assert broken_unique(orphan) is None
    finally:
        await engine.dispose()


def test_a_rule_of_another_services_table_does_not_answer() -> None:
    """Issues and visits both have a ``communities`` table keyed by code; a rule is kept in its own service's
    metadata, so visits' ``community_exists`` never answers for issues."""
    error = sa.exc.IntegrityError("INSERT …", {}, Exception("UNIQUE constraint failed: communities.code"))
    visits, issues = load_spec("visits").metadata, load_spec("issues").metadata
    assert getattr(unique_rule_broken(error, visits), "code", None) == "community_exists"
    assert unique_rule_broken(error, issues) is None
    assert table_of(Department).metadata is issues
