"""The key store: ES256 signing keys in the identity database, the private halves encrypted with the field
cipher. The newest live key signs; a rotated key stays published for the longest access-token lifetime (plus
leeway), then retires. Every replica reads the store at start, every ``key_reload_seconds``, and when a token
names a kid it does not know."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from minsheng.platform.auth import mint_token
from minsheng.platform.db import Database
from minsheng.platform.ids import as_utc, utcnow
from minsheng.platform.privacy import FieldCipher, field_cipher
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.tokens import KeyRing, SigningKey
from minsheng.settings import Settings
from services.identity import config
from services.identity.models import SigningKeyRow, on_postgres
from services.identity.sealing import open_signing_key, seal_signing_key


async def read_keys(db: Database, cipher: FieldCipher) -> list[SigningKey]:
    now = utcnow()
    async with db.sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    select(SigningKeyRow).where(
                        sa.or_(col(SigningKeyRow.retire_at).is_(None), col(SigningKeyRow.retire_at) > now)
                    )
                )
            )
            .scalars()
            .all()
        )
    return [_key(row, cipher) for row in rows]


def _key(row: SigningKeyRow, cipher: FieldCipher) -> SigningKey:
    pem = open_signing_key(cipher, row.kid, row.private_key_enc)
    return SigningKey.from_private_pem(
        row.kid,
        pem,
        created_at=as_utc(row.created_at).timestamp(),
        retire_at=as_utc(row.retire_at).timestamp() if row.retire_at else None,
    )


async def _lock(session: AsyncSession) -> None:
    if on_postgres(session):
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('minsheng.identity.keys'))"))


async def ensure_key(db: Database, cipher: FieldCipher) -> list[SigningKey]:
    """The live keys, creating the first one if there is none that can sign (one replica does, under a lock)."""
    keys = await read_keys(db, cipher)
    if any(k.retire_at is None for k in keys):
        return keys
    async with db.sessionmaker() as session, session.begin():
        await _lock(session)
        current = (
            await session.execute(select(SigningKeyRow.kid).where(col(SigningKeyRow.retire_at).is_(None)))
        ).first()
        if current is None:
            session.add(_row(SigningKey.generate(), cipher))
    return await read_keys(db, cipher)


def _row(key: SigningKey, cipher: FieldCipher) -> SigningKeyRow:
    enc = seal_signing_key(cipher, key.kid, key.private_pem())
    return SigningKeyRow(kid=key.kid, private_key_enc=enc, created_at=datetime.fromtimestamp(key.created_at, UTC))


async def rotate(db: Database, cipher: FieldCipher, overlap_seconds: float) -> tuple[str, list[str]]:
    """Add a new signing key; the current ones sign until it does (``sign_after_seconds``) and retire after
    ``overlap_seconds`` (published until then, so tokens they signed keep verifying). The new kid and the
    retiring kids."""
    new = SigningKey.generate()
    async with db.sessionmaker() as session, session.begin():
        await _lock(session)
        retiring = (
            (await session.execute(select(SigningKeyRow).where(col(SigningKeyRow.retire_at).is_(None)))).scalars().all()
        )
        retire_at = utcnow() + timedelta(seconds=overlap_seconds)
        for row in retiring:
            row.retire_at = retire_at
        session.add(_row(new, cipher))
    return new.kid, [r.kid for r in retiring]


async def load_into(runtime: ServiceRuntime) -> None:
    runtime.keyring.replace(await read_keys(runtime.db, field_cipher(runtime.settings)))


def sign_after_seconds(settings: Settings) -> float:
    """How long a new key is published before it signs. In the distributed mode the other services read the
    keys over JWKS: every identity replica publishes a new key within ``key_reload_seconds``, and a service
    that fetched the JWKS just before may fetch it again ``jwks_min_refetch_seconds`` later. Embedded, every
    service verifies against this process's own ring."""
    if settings.mode == "embedded":
        return 0.0
    return config.get().key_reload_seconds + settings.jwks_min_refetch_seconds


async def start_keys(runtime: ServiceRuntime) -> None:
    """At start: the key store has a signing key, and the process's key ring holds the live keys."""
    ring = runtime.keyring
    ring.sign_after_seconds = sign_after_seconds(runtime.settings)
    ring.replace(await ensure_key(runtime.db, field_cipher(runtime.settings)))

    async def reload() -> None:
        await load_into(runtime)

    ring.reload = reload
    ring.min_reload_seconds = min(5.0, config.get().key_reload_seconds)


async def key_ring(settings: Settings) -> KeyRing:
    """The identity's live keys, read from its key store (migrating and creating the first key if needed)."""
    from minsheng.platform.db import create_database_if_missing
    from minsheng.platform.migrations import upgrade
    from services.identity.app import SPEC

    url = settings.database_url_for("identity")
    await create_database_if_missing(url)
    db = Database(url, SPEC.tables)
    try:
        await upgrade(db, "identity", SPEC.migrations_dir)
        return KeyRing(await ensure_key(db, field_cipher(settings)))
    finally:
        await db.dispose()


async def dev_token(
    settings: Settings,
    sub: str,
    roles: Iterable[str],
    scopes: Sequence[str] = (),
    *,
    name: str | None = None,
    ttl_seconds: int | None = None,
) -> str:
    """``minsheng token``: a token signed with the identity's key store, for development and tests. It needs
    the identity database, like the identity service."""
    ring = await key_ring(settings)
    return mint_token(ring, settings, sub, roles, scopes, name=name, ttl_seconds=ttl_seconds, amr=["dev"])


def key_ring_blocking(settings: Settings) -> KeyRing:
    """:func:`key_ring` from synchronous code, also while an event loop runs in this thread (the development
    token of the tests and the benchmark): read in a thread of its own."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, key_ring(settings)).result()
