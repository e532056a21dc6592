"""Re-encrypting personal data under the current field key (``minsheng keys rotate-data``).

Every sealed column a service declares (``ServiceSpec.sealed``) is rewritten in committed batches: each value
not yet under the current key id (old ``v1:`` values included) is decrypted with the keyring and sealed again
under the current key, bound to its place (table, column, row id). The service keeps running meanwhile: the
keyring reads both keys, so every value stays readable before, during and after.

- **Resumable**: a batch is one transaction; what is done stays done, a re-run picks up the rest (the rows
  still to do are exactly the ones not under the current key).
- **Safe across replicas**: on PostgreSQL a batch locks its rows ``FOR UPDATE SKIP LOCKED``, so several
  copies of the command (or one per replica) share the work without waiting on or redoing each other's rows;
  a row a request is updating at the same moment is skipped and picked up by the next pass.
- ``rehash=True`` also recomputes the keyed lookup hashes (after ``MINSHENG_FIELD_LOOKUP_KEY`` changed): it
  walks every row in key order (keyset ranges), since a hash does not say which key made it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from minsheng.platform.db import Database
from minsheng.platform.privacy import PREFIX, FieldCipher, SealedColumns, aad_of


@dataclass
class RotationStats:
    rows: int = 0
    values: int = 0
    rehashed: int = 0
    batches: int = 0
    seconds: float = 0.0
    by_table: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _open(cipher: FieldCipher, stored: str | None, sealed: SealedColumns, column: str, key: Any) -> str | None:
    """A stored value in clear, whichever format it is in (``v1``: the original key, no associated data)."""
    if stored is None or not sealed.aad or not stored.startswith(PREFIX):
        return cipher.decrypt(stored)
    return cipher.open(stored, sealed.table, column, key, unbound=sealed.unbound)


def _reseal(cipher: FieldCipher, stored: str | None, sealed: SealedColumns, column: str, key: Any) -> str | None:
    if stored is None:
        return None
    return cipher.encrypt(
        _open(cipher, stored, sealed, column, key), aad=aad_of(sealed.table, column, key) if sealed.aad else None
    )


def _stale(table: sa.Table, sealed: SealedColumns, current: str) -> Any:
    """Rows with a value not yet under the current key (``current``: its prefix), among the rows that hold
    sealed values."""
    columns = [table.c[c] for c in sealed.columns]
    stale = [sa.and_(c.is_not(None), ~c.startswith(current, autoescape=True)) for c in columns]
    for name, path in sealed.nested:  # a JSON column, as text: `"<key>": "v…` (JSONB and json.dumps alike)
        text = sa.cast(table.c[name], sa.Text)
        stale.append(
            sa.and_(
                text.contains(f'"{path[-1]}": "', autoescape=True),
                ~text.contains(f'"{path[-1]}": "{current}', autoescape=True),
            )
        )
    condition = sa.or_(*stale)
    return sa.and_(sealed.where(table), condition) if sealed.where is not None else condition


def _reseal_nested(cipher: FieldCipher, document: Any, path: tuple[str, ...], current: str) -> tuple[Any, int]:
    """``document`` with the sealed value at ``path`` under the current key (a copy; the same when there is
    none or it is current already), and how many values were re-sealed (0 or 1)."""
    if not isinstance(document, dict):
        return document, 0
    head, *rest = path
    inner = document.get(head)
    if rest:
        resealed, n = _reseal_nested(cipher, inner, tuple(rest), current)
        return ({**document, head: resealed}, n) if n else (document, 0)
    if not isinstance(inner, str) or inner.startswith(current):
        return document, 0
    return {**document, head: cipher.encrypt(cipher.decrypt(inner))}, 1


async def rotate_table(
    db: Database,
    table: sa.Table,
    sealed: SealedColumns,
    cipher: FieldCipher,
    *,
    batch: int = 500,
    rehash: bool = False,
    stats: RotationStats | None = None,
) -> RotationStats:
    stats = stats or RotationStats()
    key = table.c[sealed.key]
    columns = [table.c[c] for c in sealed.columns]
    documents = [table.c[name] for name, _ in sealed.nested]
    current = f"{PREFIX}{cipher.current}:"
    stale = _stale(table, sealed, current)
    hashes = [(table.c[h], table.c[src]) for h, src in sealed.hashes] if rehash else []
    started = time.perf_counter()
    after: Any = None
    while True:
        query = sa.select(key, *columns, *documents).order_by(key).limit(batch)
        if not rehash:
            query = query.where(stale)
        elif sealed.where is not None:
            query = query.where(sealed.where(table))
        if after is not None:
            query = query.where(key > after)
        if db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        async with db.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                break
            updates = []
            for row in rows:
                values: dict[str, Any] = {"_key": row[0]}
                for i, column in enumerate(sealed.columns, start=1):
                    if row[i] is not None and (rehash is False or not row[i].startswith(current)):
                        values[column] = _reseal(cipher, row[i], sealed, column, row[0])
                        stats.values += 1
                    else:
                        values[column] = row[i]
                for j, (name, path) in enumerate(sealed.nested, start=1 + len(columns)):
                    values[name], n = _reseal_nested(cipher, row[j], path, current)
                    stats.values += n
                for hash_column, source in hashes:
                    clear = _open(cipher, values[source.name], sealed, source.name, row[0])
                    values[hash_column.name] = cipher.lookup_hash(clear)
                    stats.rehashed += 1
                updates.append(values)
            names = [*sealed.columns, *(name for name, _ in sealed.nested), *(h.name for h, _ in hashes)]
            await conn.execute(
                sa.update(table).where(key == sa.bindparam("_key")).values({n: sa.bindparam(n) for n in names}), updates
            )
        stats.rows += len(rows)
        stats.batches += 1
        stats.by_table[sealed.table] = stats.by_table.get(sealed.table, 0) + len(rows)
        after = rows[-1][0]
        if len(rows) < batch:
            break
    stats.seconds += time.perf_counter() - started
    return stats


async def remaining(db: Database, table: sa.Table, sealed: SealedColumns, cipher: FieldCipher) -> int:
    """Rows with a value not yet under the current key."""
    stale = _stale(table, sealed, f"{PREFIX}{cipher.current}:")
    async with db.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(stale))).scalar_one())


async def rotate_service(
    db: Database,
    metadata: sa.MetaData,
    sealed: Sequence[SealedColumns],
    cipher: FieldCipher,
    *,
    batch: int = 500,
    rehash: bool = False,
) -> RotationStats:
    stats = RotationStats()
    for entry in sealed:
        await rotate_table(db, metadata.tables[entry.table], entry, cipher, batch=batch, rehash=rehash, stats=stats)
    return stats
