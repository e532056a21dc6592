"""Staff sign-in: user name and password, then TOTP; changing the password and setting up the authenticator. Use
cases take a unit of work and never commit, except that failed sign-ins record their audit row and lockout count
in transactions of their own (the request's own work rolls back)."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from minsheng.platform.auth import Role
from minsheng.platform.errors import Problem, conflict
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.privacy import PII_REVEAL_SCOPE, FieldCipher
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.uow import UnitOfWork
from services.identity import config, passwords, sessions
from services.identity.models import Account, AccountStatus, StaffCredential, StaffLogin, TokenPair, TotpProvisioning
from services.identity.sealing import open_totp, seal_totp


def _throttle_keys(username: str, address: str | None) -> tuple[str, str | None]:
    return f"user:{username.strip().lower()}", (f"addr:{address}" if address else None)


async def authenticate(
    uow: UnitOfWork, runtime: ServiceRuntime, username: str, password: str, address: str | None, *, kind: str
) -> tuple[Account, StaffCredential]:
    """Name + password, under lockout. The same answer whether the name exists or not, and the same work
    (argon2 against a dummy hash)."""
    c = config.get()
    user_key, addr_key = _throttle_keys(username, address)
    keys = [user_key] + ([addr_key] if addr_key else [])
    wait = await sessions.locked_for(uow, keys)
    if wait > 0:
        await uow.rollback()  # the request's connection goes back before audit_alone takes one
        await sessions.audit_alone(runtime, kind, "locked", address_hash=address)
        raise sessions.too_many_failures(wait)
    cred = (
        await uow.session.execute(select(StaffCredential).where(StaffCredential.username == username.strip().lower()))
    ).scalar_one_or_none()
    ok = await asyncio.to_thread(passwords.verify_password, cred.password_hash if cred else None, password)
    account = await uow.session.get(Account, cred.account_id) if cred is not None else None
    if not ok or cred is None or account is None or account.status != AccountStatus.active:
        # The failure and its audit row are written in transactions of their own, so that they stay when this
        # request's rolls back. Its connection goes back to the pool first: a request holding one while
        # waiting for another could, with enough failed sign-ins at once, leave the pool with none to give.
        account_id = account.id if account else None
        await uow.rollback()
        await sessions.record_failure(runtime, user_key, c.lockout_threshold)
        if addr_key:
            await sessions.record_failure(runtime, addr_key, c.address_lockout_threshold)
        await sessions.audit_alone(runtime, kind, "bad_credentials", account_id=account_id, address_hash=address)
        raise Problem(
            401,
            "invalid_credentials",
            "Wrong user name or password",
            "The user name or the password is wrong (or the account is disabled).",
        )
    if passwords.needs_rehash(cred.password_hash):
        cred.password_hash = await asyncio.to_thread(passwords.hash_password, password)
    return account, cred


def totp_required(account: Account, cred: StaffCredential) -> bool:
    return (
        cred.totp_enabled
        or Role.admin.value in account.roles
        or PII_REVEAL_SCOPE in account.scopes
        or "*" in account.scopes
    )


async def check_totp(
    uow: UnitOfWork,
    runtime: ServiceRuntime,
    cipher: FieldCipher,
    account: Account,
    cred: StaffCredential,
    code: str | None,
    address: str | None,
) -> bool:
    """True when a second factor was checked; raises when one is due and missing or wrong."""
    if not totp_required(account, cred):
        return False
    if not cred.totp_enabled or cred.totp_secret_enc is None:
        raise Problem(
            403,
            "totp_enrollment_required",
            "Set up a second factor first",
            "This account needs a TOTP authenticator: POST /identity/staff/totp/setup, then /confirm.",
        )
    if code is None:
        raise Problem(
            401, "totp_required", "Enter the code from your authenticator app", "Send the 6-digit code as `totp`."
        )
    secret = open_totp(cipher, cred.account_id, cred.totp_secret_enc)
    assert secret is not None
    step = passwords.verify_totp(secret, code, cred.totp_last_step)
    if step is None:
        user_key, _ = _throttle_keys(cred.username, address)
        account_id = account.id
        await uow.rollback()  # as for a wrong password: the connection goes back before the failure's own units
        await sessions.record_failure(runtime, user_key, config.get().lockout_threshold)
        await sessions.audit_alone(runtime, "staff_login", "bad_totp", account_id=account_id, address_hash=address)
        raise Problem(401, "invalid_totp", "Wrong or reused code", "Enter the current code from your app.")
    cred.totp_last_step = step
    return True


def password_change_required() -> Problem:
    return Problem(
        403,
        "password_change_required",
        "Choose a new password first",
        "POST /identity/staff/password with the current and a new password.",
    )


async def staff_login(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, body: StaffLogin, address: str | None
) -> TokenPair | None:
    """The signed-in staff member's tokens; ``None`` when they must change their password first (the caller
    commits either way: a TOTP code used here is spent even then, so it cannot be replayed)."""
    account, cred = await authenticate(uow, runtime, body.username, body.password, address, kind="staff_login")
    otp = await check_totp(uow, runtime, cipher, account, cred, body.totp, address)
    if cred.must_change_password:
        return None
    user_key, addr_key = _throttle_keys(body.username, address)
    await sessions.clear_failures(uow, user_key)
    if addr_key:
        await sessions.clear_failures(uow, addr_key)
    cred.last_login_at = utcnow()
    sessions.audit(uow, "staff_login", "ok", account_id=account.id, address_hash=address)
    amr = ["pwd", "otp"] if otp else ["pwd"]
    return await sessions.issue(uow, runtime, account, amr, view=sessions.public(account, cred=cred))


async def change_password(
    uow: UnitOfWork,
    runtime: ServiceRuntime,
    cipher: FieldCipher,
    username: str,
    current: str,
    new: str,
    totp: str | None,
    address: str | None,
) -> None:
    account, cred = await authenticate(uow, runtime, username, current, address, kind="password_change")
    if cred.totp_enabled:
        await check_totp(uow, runtime, cipher, account, cred, totp, address)
    why = passwords.check_password_policy(new, cred.username)
    if why is None and new == current:
        why = _t("must differ from the current password")
    if why:
        raise Problem(422, "weak_password", "Choose another password", _t("The new password {why}.", why=why))
    cred.password_hash = await asyncio.to_thread(passwords.hash_password, new)
    cred.must_change_password = False
    cred.password_changed_at = utcnow()
    await sessions.revoke_account(uow, account.id, "password_changed")
    sessions.audit(uow, "password_change", "ok", account_id=account.id, address_hash=address)


async def totp_setup(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, username: str, password: str, address: str | None
) -> TotpProvisioning:
    account, cred = await authenticate(uow, runtime, username, password, address, kind="totp_setup")
    if cred.totp_enabled:
        raise conflict("totp_already_enabled", "A second factor is set up already; an admin can reset it.")
    secret = passwords.new_totp_secret()
    cred.totp_secret_enc = seal_totp(cipher, cred.account_id, secret)
    sessions.audit(uow, "totp_setup", "ok", account_id=account.id, address_hash=address)
    return TotpProvisioning(secret=secret, otpauth_uri=passwords.otpauth_uri(secret, cred.username))


async def totp_confirm(
    uow: UnitOfWork,
    runtime: ServiceRuntime,
    cipher: FieldCipher,
    username: str,
    password: str,
    code: str,
    address: str | None,
) -> None:
    account, cred = await authenticate(uow, runtime, username, password, address, kind="totp_confirm")
    if cred.totp_enabled:
        raise conflict("totp_already_enabled", "A second factor is set up already.")
    secret = open_totp(cipher, cred.account_id, cred.totp_secret_enc) if cred.totp_secret_enc else None
    step = passwords.verify_totp(secret, code, 0) if secret else None
    if step is None:
        raise Problem(422, "invalid_totp", "Wrong code", "Enter the current code shown by your app.")
    cred.totp_enabled = True
    cred.totp_last_step = step
    sessions.audit(uow, "totp_confirm", "ok", account_id=account.id, address_hash=address)
