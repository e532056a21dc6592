"""Field-key rotation (issue 13): values move to a new key id, bound to their row, while every value stays
readable before, during and after; the run resumes and shares the work between replicas.

The 100,000-resident run on PostgreSQL measures the rate (``key_rotation`` figures):
``pytest tests/reliability/test_key_rotation.py -m slow``; ``MINSHENG_ROTATION_RESIDENTS`` changes the size."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from minsheng.platform.db import Database
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.keyrotation import remaining, rotate_service, rotate_table
from minsheng.platform.privacy import FieldCipher, aad_of, field_cipher
from minsheng.platform.sql import table_of
from minsheng.settings import Settings
from services.visits.app import SPEC as VISITS
from services.visits.models import Resident
from tests.conftest import embedded_settings
from tests.support.client import running_system
from tests.support.reliability import env_int, record

K2 = base64.b64encode(bytes(range(32))).decode()
RESIDENTS: sa.Table = table_of(Resident)
SEALED = next(e for e in VISITS.sealed if e.table == "residents")


def rotated(settings: Settings) -> FieldCipher:
    return field_cipher(settings.model_copy(update={"field_keys": {"k2": SecretStr(K2)}, "field_key_current": "k2"}))


def _read_all(cipher: FieldCipher, rows: list[Any]) -> dict[UUID, tuple[str | None, ...]]:
    out = {}
    for r in rows:
        out[r.id] = tuple(
            cipher.decrypt(v, aad=aad_of("residents", c, r.id) if v and v.startswith("v2:") else None)
            for c, v in (
                ("id_number_enc", r.id_number_enc),
                ("health_notes_enc", r.health_notes_enc),
                ("phone_enc", r.phone_enc),
            )
        )
    return out


SEALED_VALUES = sa.select(
    RESIDENTS.c.id,
    RESIDENTS.c.id_number_enc,
    RESIDENTS.c.health_notes_enc,
    RESIDENTS.c.phone_enc,
    RESIDENTS.c.id_number_hash,
)


async def _rows(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(SEALED_VALUES)).all())


async def test_rotation_rewrites_every_value_under_the_new_key_bound_to_its_row(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    async with running_system(settings, ["visits"], demo=True) as s:
        db = s.runtime("visits").db
        old = field_cipher(settings)
        # A few values in the old v1 format (no key id, no associated data), as stored before this change.
        async with db.engine.begin() as conn:
            ids = list((await conn.execute(sa.select(RESIDENTS.c.id).limit(5))).scalars())
            legacy = FieldCipher(settings.field_encryption_key.get_secret_value())  # type: ignore[union-attr]
            for rid in ids:
                await conn.execute(
                    sa.update(RESIDENTS)
                    .where(RESIDENTS.c.id == rid)
                    .values(health_notes_enc="v1:" + (legacy.encrypt("旧格式 old format") or "").split(":", 2)[2])
                )
        before = _read_all(old, await _rows(db))
        new = rotated(settings)
        assert await remaining(db, RESIDENTS, SEALED, new) == len(before)

        stats = await rotate_table(db, RESIDENTS, SEALED, new, batch=7)
        rows = await _rows(db)
        assert stats.rows == len(before) and await remaining(db, RESIDENTS, SEALED, new) == 0
        assert all(v is None or v.startswith("v2:k2:") for r in rows for v in r[1:4])
        assert _read_all(new, rows) == before  # every value readable, unchanged
        assert {r.id: r.id_number_hash for r in rows} == {r.id: r.id_number_hash for r in await _rows(db)}
        assert (await rotate_table(db, RESIDENTS, SEALED, new)).rows == 0  # a re-run has nothing left to do

        # A value moved to another row (or column) no longer decrypts: the associated data binds it.
        a, b = rows[0], rows[1]
        with pytest.raises(InvalidTag):
            new.decrypt(a.id_number_enc, aad=aad_of("residents", "id_number_enc", b.id))
        with pytest.raises(InvalidTag):
            new.decrypt(a.id_number_enc, aad=aad_of("residents", "health_notes_enc", a.id))
        # The lookup hash does not depend on the encryption key: the same before and after.
        assert old.lookup_hash("140226193901150020") == new.lookup_hash("140226193901150020")

        # The service itself reads through the rotated keyring (the reveal decrypts with the row's AAD).
        r = await s.client.get("/visits/residents?limit=1", headers=s.auth("admin"))
        assert r.status_code == 200


def _resident_rows(cipher: FieldCipher, start: int, n: int, template: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        rid = uuid7()
        number = f"1402261940{i:07d}X"[:18]
        rows.append(
            {
                **template,
                "id": rid,
                "name": f"居民{i}",
                "id_number_enc": cipher.seal(number, "residents", "id_number_enc", rid),
                "id_number_hash": cipher.lookup_hash(number),
                "id_number_masked": number[:6] + "********",
                "health_notes_enc": cipher.seal(f"notes {i}", "residents", "health_notes_enc", rid),
                "phone": "139****0000",
                "phone_enc": cipher.seal(f"139{i:08d}", "residents", "phone_enc", rid),
                "phone_hash": cipher.lookup_hash(f"139{i:08d}"),
            }
        )
    return rows


@pytest.mark.integration
@pytest.mark.slow
async def test_rotating_100k_residents_on_postgresql_keeps_every_value_readable(
    tmp_path: Path, pg_template: str
) -> None:
    n = env_int("MINSHENG_ROTATION_RESIDENTS", 100_000)
    replicas = 2
    settings = embedded_settings(tmp_path, database_url=pg_template)
    async with running_system(settings, ["visits"], demo=True) as s:
        db = s.runtime("visits").db
        old, new = field_cipher(settings), rotated(settings)
        async with db.engine.connect() as conn:
            first = (await conn.execute(sa.select(RESIDENTS).limit(1))).mappings().one()
        template = {k: v for k, v in first.items() if k not in ("id", "account_subject")}
        template.update(created_at=utcnow(), updated_at=utcnow())
        t0 = time.perf_counter()
        for start in range(0, n, 10_000):
            async with db.engine.begin() as conn:
                await conn.execute(sa.insert(RESIDENTS), _resident_rows(old, start, min(10_000, n - start), template))
        load_seconds = time.perf_counter() - t0
        total = len(await _rows(db))
        assert await remaining(db, RESIDENTS, SEALED, new) == total

        before = await _rows(db)
        everything = _read_all(old, before)  # every value readable before, with the old keyring alone
        assert len(everything) == total
        sample_ids = [r.id for r in random.Random(7).sample(before, 500)]
        expected = {k: everything[k] for k in sample_ids}
        reads = {"ok": 0, "failed": 0}
        done = asyncio.Event()

        async def reader() -> None:
            """Reads sampled values with the keyring the services use during the rotation (both keys)."""
            while not done.is_set():
                async with db.engine.connect() as conn:
                    sample = SEALED_VALUES.where(RESIDENTS.c.id.in_(random.sample(sample_ids, 50)))
                    rows = (await conn.execute(sample)).all()
                try:
                    got = _read_all(new, list(rows))
                    reads["ok" if all(got[k] == expected[k] for k in got) else "failed"] += len(got)
                except Exception:
                    reads["failed"] += len(rows)
                await asyncio.sleep(0.05)

        async def replica() -> Any:
            own = Database(db.url.render_as_string(hide_password=False), VISITS.tables)
            try:
                return await rotate_service(own, VISITS.metadata, [SEALED], new, batch=500)
            finally:
                await own.dispose()

        reading = asyncio.create_task(reader())
        t0 = time.perf_counter()
        results = await asyncio.gather(*[replica() for _ in range(replicas)])
        seconds = time.perf_counter() - t0
        done.set()
        await reading
        left = await remaining(db, RESIDENTS, SEALED, new)
        everything_after = _read_all(new, await _rows(db))  # every value readable after, the same as before
        after = {k: everything_after[k] for k in sample_ids}
        rows_done = sum(r.rows for r in results)
        figures = record(
            "key_rotation",
            {
                "residents": total,
                "values_per_resident": 3,
                "replicas": replicas,
                "batch": 500,
                "rows_rotated": rows_done,
                "rows_rotated_by_replica": [r.rows for r in results],
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows_done / seconds),
                "values_per_second": round(sum(r.values for r in results) / seconds),
                "left_under_old_key": left,
                "reads_during_rotation_ok": reads["ok"],
                "reads_during_rotation_failed": reads["failed"],
                "load_seconds": round(load_seconds, 1),
            },
        )
        assert rows_done == total and left == 0
        assert after == expected and reads["failed"] == 0 and reads["ok"] > 0
        assert everything_after == everything
        assert figures["rows_per_second"] > 0


async def test_rehash_moves_the_lookup_hashes_to_a_lookup_key_of_their_own(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    async with running_system(settings, ["visits"], demo=True) as s:
        db = s.runtime("visits").db
        old = field_cipher(settings)
        new = field_cipher(settings.model_copy(update={"field_lookup_key": SecretStr(K2)}))
        assert old.lookup_hash("140226194103080025") != new.lookup_hash("140226194103080025")
        # Until the rows are re-hashed, look-ups try the original derivation too.
        assert new.lookup_hashes("140226194103080025") == [
            new.lookup_hash("140226194103080025"),
            old.lookup_hash("140226194103080025"),
        ]
        assert old.lookup_hashes("140226194103080025") == [old.lookup_hash("140226194103080025")]
        stats = await rotate_table(db, RESIDENTS, SEALED, new, batch=100, rehash=True)
        rows = await _rows(db)
        assert stats.rows == len(rows) and stats.rehashed == 2 * len(rows)
        for r in rows[:200]:
            number = new.decrypt(r.id_number_enc, aad=aad_of("residents", "id_number_enc", r.id))
            assert r.id_number_hash == new.lookup_hash(number)


def test_the_cli_rotates_every_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from minsheng.cli import app

    monkeypatch.setenv("MINSHENG_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    monkeypatch.setenv("MINSHENG_FIELD_KEYS", f'{{"k2": "{K2}"}}')
    monkeypatch.setenv("MINSHENG_FIELD_KEY_CURRENT", "k2")
    result = runner.invoke(app, ["keys", "rotate-data"])
    assert result.exit_code == 0, result.output
    assert "not yet under k2: 0" in result.output and "visits:" in result.output
