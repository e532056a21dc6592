"""What the ``minsheng admin`` and ``minsheng keys`` commands do (run against the identity database)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlmodel import col, select

from minsheng.platform.auth import Principal, Role
from minsheng.platform.db import Database, create_database_if_missing
from minsheng.platform.ids import as_utc
from minsheng.platform.migrations import upgrade
from minsheng.platform.privacy import field_cipher
from minsheng.platform.service import ServiceRuntime
from minsheng.settings import Settings
from services.identity import accounts, config, passwords
from services.identity.keys import ensure_key, rotate, sign_after_seconds
from services.identity.models import SigningKeyRow, StaffCreate, StaffCredential
from services.identity.sealing import seal_totp

CLI = Principal(sub="cli:minsheng-admin-create", roles=frozenset({Role.admin}), scopes=("*",))


@contextlib.asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    from minsheng.platform.bus.memory import InProcessBus
    from services.identity.app import SPEC

    await create_database_if_missing(settings.database_url_for("identity"))
    runtime = ServiceRuntime(SPEC, settings, InProcessBus())
    try:
        await upgrade(runtime.db, "identity", SPEC.migrations_dir)
        yield runtime
    finally:
        await runtime.db.dispose()


async def create_admin(settings: Settings, username: str, password: str, display_name: str | None) -> dict[str, Any]:
    why = passwords.check_password_policy(password, username)
    if why:
        raise ValueError(f"the password {why}")
    async with _runtime(settings) as runtime, runtime.uow() as uow:
        data = StaffCreate(
            username=username,
            roles=[Role.admin.value, Role.staff.value],
            scopes=["*"],
            display_name=display_name,
            reason="bootstrap admin (minsheng admin create)",
        )
        account, _ = await accounts.create_staff(uow, CLI, data, password=password, must_change=False)
        cred = (
            await uow.session.execute(select(StaffCredential).where(StaffCredential.account_id == account.id))
        ).scalar_one()
        secret = passwords.new_totp_secret()
        cred.totp_secret_enc = seal_totp(field_cipher(settings), cred.account_id, secret)
        cred.totp_enabled = True
        await uow.commit()  # the AccountCreated event is in the outbox: the relay publishes it
    return {
        "account_id": str(account.id),
        "username": username,
        "totp_secret": secret,
        "otpauth_uri": passwords.otpauth_uri(secret, username),
    }


async def rotate_keys(settings: Settings) -> dict[str, Any]:
    async with _runtime(settings) as runtime:
        cipher = field_cipher(settings)
        await ensure_key(runtime.db, cipher)
        # The retiring key signs until the new one does, then stays published while its last tokens live.
        token_life = settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
        overlap = sign_after_seconds(settings) + max(config.get().key_overlap_seconds, token_life)
        kid, retiring = await rotate(runtime.db, cipher, overlap)
    return {"new_kid": kid, "retiring": retiring, "retire_after_seconds": overlap}


async def list_keys(settings: Settings) -> list[dict[str, Any]]:
    url = settings.database_url_for("identity")
    from services.identity.app import SPEC

    db = Database(url, SPEC.tables)
    try:
        async with db.sessionmaker() as session:
            query = select(SigningKeyRow).order_by(col(SigningKeyRow.created_at))
            rows = (await session.execute(query)).scalars().all()
    finally:
        await db.dispose()
    return [
        {
            "kid": r.kid,
            "algorithm": r.algorithm,
            "created_at": as_utc(r.created_at).isoformat(),
            "retire_at": as_utc(r.retire_at).isoformat() if r.retire_at else None,
        }
        for r in rows
    ]
