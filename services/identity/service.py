"""The identity use cases. They take a unit of work and never commit (failed sign-ins record their audit row and
lockout count in transactions of their own, since the request's own work rolls back)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountStatusChanged,
)
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor
from minsheng.platform.privacy import PII_REVEAL_SCOPE, FieldCipher
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.uow import UnitOfWork
from services.identity import config, passwords, sessions
from services.identity.models import (
    THROTTLES,
    AccessGrant,
    AccessUpdate,
    Account,
    AccountKind,
    AccountPublic,
    AccountStatus,
    GrantPublic,
    StaffCreate,
    StaffCredential,
    StaffLogin,
    TokenPair,
    TotpProvisioning,
    WechatAppToken,
    WechatIdentity,
    on_postgres,
)
from services.identity.wechat import TOKEN_INVALID, WechatClient, WechatError, problem_for

# --- WeChat ---------------------------------------------------------------------------------------------------


async def wechat_client(runtime: ServiceRuntime) -> WechatClient:
    """The adapter, against the configured API base or (development) the local stand-in."""
    client = runtime.state.get("wechat")
    if client is not None:
        return client  # type: ignore[no-any-return]
    c = config.get()
    base = c.wechat_api_base
    if not base:
        if runtime.settings.mode != "embedded" and not c.wechat_standin:
            raise Problem(
                503,
                "wechat_not_configured",
                "WeChat sign-in is not configured",
                "Set MINSHENG_IDENTITY_WECHAT_API_BASE (the stand-in is for development only).",
            )
        from services.identity.standin import StandinServer

        standin = runtime.state.get("standin")
        if standin is None:
            standin = runtime.state["standin"] = StandinServer(c.wechat_appid, c.wechat_secret.get_secret_value())
        base = await standin.start()
    client = runtime.state.get("wechat")  # another request may have made it meanwhile
    if client is None:
        client = runtime.state["wechat"] = WechatClient(
            base, c.wechat_appid, c.wechat_secret.get_secret_value(), timeout=c.wechat_timeout_seconds
        )
    return client


async def close_wechat(runtime: ServiceRuntime) -> None:
    client = runtime.state.pop("wechat", None)
    if client is not None:
        await client.close()
    standin = runtime.state.pop("standin", None)
    if standin is not None:
        await standin.stop()


async def wechat_login(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, code: str, address: str | None
) -> TokenPair:
    client = await wechat_client(runtime)
    try:
        session = await client.code2session(code)
    except WechatError as exc:
        await sessions.audit_alone(runtime, "wechat_login", f"wechat_{exc.errcode}", address_hash=address)
        raise problem_for(exc) from exc
    digest = cipher.lookup_hash(session.openid)
    assert digest is not None
    if on_postgres(uow.session):  # the returning user in one statement (sessions.returning_wechat_login)
        refresh, family = sessions.new_refresh_token(), uuid7()
        done = await sessions.returning_wechat_login(
            uow,
            openid_hash=digest,
            session_key_enc=cipher.encrypt(session.session_key),
            unionid_enc=cipher.encrypt(session.unionid) if session.unionid else None,
            refresh=refresh,
            family_id=family,
            address_hash=address,
        )
        if done is not None:
            account, phone_enc = done
            if account.status != AccountStatus.active:
                await uow.rollback()
                await sessions.audit_alone(
                    runtime, "wechat_login", "disabled", account_id=account.id, address_hash=address
                )
                raise Problem(403, "account_disabled", "This account is disabled", "Ask your community office.")
            view = sessions.public(account, phone=cipher.decrypt(phone_enc), openid=session.openid)
            return await sessions.issue(
                uow, runtime, account, ["wechat"], family_id=family, view=view, stored_refresh=refresh
            )
    # one round trip for the returning user: the identity and its account together
    found = (
        await uow.session.execute(
            select(WechatIdentity, Account)
            .join(Account, col(Account.id) == col(WechatIdentity.account_id))
            .where(WechatIdentity.openid_hash == digest)
        )
    ).first()
    if found is None:
        account = Account(kind=AccountKind.wechat, roles=[Role.resident.value])
        ident = WechatIdentity(
            account_id=account.id,
            appid=client.appid,
            openid_hash=digest,
            openid_enc=cipher.encrypt(session.openid) or "",
        )
        uow.session.add(account)
        await uow.session.flush()
        uow.session.add(ident)
        now = utcnow()
        uow.emit(AccountCreated(account_id=account.id, occurred_at=now, kind="wechat", roles=account.roles))
        uow.emit(AccountContactChanged(account_id=account.id, occurred_at=now, wechat_openid=session.openid))
        outcome = "created"
    else:
        ident, account = found
        outcome = "ok"
    if account.status != AccountStatus.active:
        await sessions.audit_alone(runtime, "wechat_login", "disabled", account_id=account.id, address_hash=address)
        raise Problem(403, "account_disabled", "This account is disabled", "Ask your community office.")
    ident.session_key_enc = cipher.encrypt(session.session_key)  # never leaves the server
    if session.unionid:
        ident.unionid_enc = cipher.encrypt(session.unionid)
    ident.last_login_at = utcnow()
    sessions.audit(uow, "wechat_login", outcome, account_id=account.id, address_hash=address)
    view = sessions.public(account, phone=cipher.decrypt(ident.phone_enc), openid=session.openid)
    return await sessions.issue(uow, runtime, account, ["wechat"], view=view)


_token_lock = asyncio.Lock()


async def app_access_token(runtime: ServiceRuntime, cipher: FieldCipher, *, stale: str | None = None) -> str:
    """The mini-program's app access token: cached in memory and in the database (shared by the replicas),
    refreshed through ``stable_token`` five minutes before it expires, one refresh at a time (a process lock,
    and a row lock across replicas). ``stale``: a token WeChat just refused."""
    cached = runtime.state.get("app_token")
    if cached is not None and cached[0] != stale and cached[1] > utcnow() + timedelta(seconds=300):
        return cached[0]  # type: ignore[no-any-return]
    client = await wechat_client(runtime)
    async with _token_lock, runtime.uow() as uow:
        query = select(WechatAppToken).where(WechatAppToken.appid == client.appid)
        if on_postgres(uow.session):
            query = query.with_for_update()
        row = (await uow.session.execute(query)).scalar_one_or_none()
        token = cipher.decrypt(row.token_enc) if row is not None else None
        if (
            row is None
            or token is None
            or token == stale
            or as_utc(row.expires_at) <= utcnow() + timedelta(seconds=300)
        ):
            try:
                fresh = await client.stable_token()
            except WechatError as exc:
                raise problem_for(exc) from exc
            token = fresh.token
            expires = utcnow() + timedelta(seconds=fresh.expires_in)
            if row is None:
                row = WechatAppToken(appid=client.appid, token_enc=cipher.encrypt(token) or "", expires_at=expires)
                uow.session.add(row)
            else:
                row.token_enc = cipher.encrypt(token) or ""
                row.expires_at = expires
            await uow.commit()
        runtime.state["app_token"] = (token, as_utc(row.expires_at))
        return token


async def wechat_phone(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, who: Principal, code: str
) -> tuple[str, WechatIdentity]:
    ident = await uow.session.get(WechatIdentity, _account_id(who))
    if ident is None:
        raise Problem(
            409,
            "not_a_wechat_account",
            "Not a WeChat account",
            "Only a mini-program account can bind a WeChat phone number.",
        )
    client = await wechat_client(runtime)
    token = await app_access_token(runtime, cipher)
    try:
        try:
            phone = await client.phone_number(code, token)
        except WechatError as exc:
            if exc.errcode not in TOKEN_INVALID:
                raise
            phone = await client.phone_number(code, await app_access_token(runtime, cipher, stale=token))
    except WechatError as exc:
        await sessions.audit_alone(runtime, "wechat_phone", f"wechat_{exc.errcode}", account_id=ident.account_id)
        raise problem_for(exc) from exc
    ident.phone_enc = cipher.encrypt(phone)
    ident.phone_hash = cipher.lookup_hash(phone)
    ident.phone_verified_at = utcnow()
    openid = cipher.decrypt(ident.openid_enc)
    uow.emit(
        AccountContactChanged(account_id=ident.account_id, occurred_at=utcnow(), wechat_openid=openid, phone=phone)
    )
    sessions.audit(uow, "wechat_phone", "ok", account_id=ident.account_id)
    return phone, ident


def _account_id(who: Principal) -> UUID:
    try:
        return UUID(who.sub)
    except ValueError:
        raise Problem(
            404,
            "account_not_found",
            "Account not found",
            "This token's subject is not an identity account (a development token?).",
        ) from None


# --- staff sign-in --------------------------------------------------------------------------------------------


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
        await sessions.audit_alone(runtime, kind, "locked", address_hash=address)
        raise sessions.too_many(wait)
    cred = (
        await uow.session.execute(select(StaffCredential).where(StaffCredential.username == username.strip().lower()))
    ).scalar_one_or_none()
    ok = await asyncio.to_thread(passwords.verify_password, cred.password_hash if cred else None, password)
    account = await uow.session.get(Account, cred.account_id) if cred is not None else None
    if not ok or cred is None or account is None or account.status != AccountStatus.active:
        await sessions.record_failure(runtime, user_key, c.lockout_threshold)
        if addr_key:
            await sessions.record_failure(runtime, addr_key, c.address_lockout_threshold)
        await sessions.audit_alone(
            runtime, kind, "bad_credentials", account_id=account.id if account else None, address_hash=address
        )
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
    secret = cipher.decrypt(cred.totp_secret_enc)
    assert secret is not None
    step = passwords.verify_totp(secret, code, cred.totp_last_step)
    if step is None:
        user_key, _ = _throttle_keys(cred.username, address)
        await sessions.record_failure(runtime, user_key, config.get().lockout_threshold)
        await sessions.audit_alone(runtime, "staff_login", "bad_totp", account_id=account.id, address_hash=address)
        raise Problem(401, "invalid_totp", "Wrong or reused code", "Enter the current code from your app.")
    cred.totp_last_step = step
    return True


async def staff_login(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, body: StaffLogin, address: str | None
) -> TokenPair:
    account, cred = await authenticate(uow, runtime, body.username, body.password, address, kind="staff_login")
    otp = await check_totp(runtime, cipher, account, cred, body.totp, address)
    if cred.must_change_password:
        await uow.commit()  # the TOTP step is spent
        raise Problem(
            403,
            "password_change_required",
            "Choose a new password first",
            "POST /identity/staff/password with the current and a new password.",
        )
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
        await check_totp(runtime, cipher, account, cred, totp, address)
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
    cred.totp_secret_enc = cipher.encrypt(secret)
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
    secret = cipher.decrypt(cred.totp_secret_enc) if cred.totp_secret_enc else None
    step = passwords.verify_totp(secret, code, 0) if secret else None
    if step is None:
        raise Problem(422, "invalid_totp", "Wrong code", "Enter the current code shown by your app.")
    cred.totp_enabled = True
    cred.totp_last_step = step
    sessions.audit(uow, "totp_confirm", "ok", account_id=account.id, address_hash=address)


# --- accounts (admin, and staff within their scope) -----------------------------------------------------------

_STAFF_GRANTABLE = frozenset({Role.grid_worker.value, Role.staff.value, Role.resident.value, Role.rider.value})


def _staff_may_manage(who: Principal, roles: list[str], scopes: list[str]) -> bool:
    """A (non-admin) staff member manages grid workers and canteen staff in their own scope only."""
    if who.is_admin:
        return True
    if Role.staff not in who.roles or not set(roles) <= _STAFF_GRANTABLE:
        return False
    for scope in scopes:
        kind, _, value = scope.partition(":")
        if scope in ("*", PII_REVEAL_SCOPE) or not value:
            return False
        if kind == "community" and not who.covers(community=value):
            return False
        if kind == "compound" and not who.covers(compound=value):
            return False
        if kind not in ("community", "compound") and value not in who.scoped_values(kind):
            return False
    return True


async def account_view(uow: UnitOfWork, cipher: FieldCipher, account: Account) -> AccountPublic:
    staff = account.kind == AccountKind.staff
    cred = await uow.session.get(StaffCredential, account.id) if staff else None
    ident = await uow.session.get(WechatIdentity, account.id) if not staff else None
    return sessions.public(
        account,
        cred=cred,
        phone=cipher.decrypt(ident.phone_enc) if ident else None,
        openid=cipher.decrypt(ident.openid_enc) if ident else None,
    )


async def get_account(uow: UnitOfWork, who: Principal, account_id: UUID) -> Account:
    account = await uow.session.get(Account, account_id)
    if account is None or not (
        str(account.id) == who.sub
        or (
            (who.is_admin or (Role.staff in who.roles and account.scopes))
            and _staff_may_manage(who, account.roles, account.scopes)
        )
    ):
        raise not_found("account", account_id)
    return account


async def me(uow: UnitOfWork, who: Principal) -> Account:
    account = await uow.session.get(Account, _account_id(who))
    if account is None:
        raise not_found("account", who.sub)
    return account


async def list_accounts(
    uow: UnitOfWork,
    *,
    limit: int,
    cursor: str | None,
    kind: AccountKind | None,
    status: AccountStatus | None,
    role: str | None,
) -> Page[Account]:
    query = select(Account).order_by(col(Account.id)).limit(limit + 1)
    if cursor:
        (after,) = decode_cursor(cursor, UUID)
        query = query.where(col(Account.id) > after)
    if kind:
        query = query.where(Account.kind == kind.value)
    if status:
        query = query.where(Account.status == status.value)
    rows = list((await uow.session.execute(query)).scalars())
    if role:
        rows = [a for a in rows if role in a.roles]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Account](items=rows, next_cursor=encode_cursor(str(rows[-1].id)) if more and rows else None)


def _grant(uow: UnitOfWork, who: Principal, account: Account, action: str, reason: str) -> None:
    uow.session.add(
        AccessGrant(
            account_id=account.id,
            actor=who.sub,
            action=action,
            roles=list(account.roles),
            scopes=list(account.scopes),
            reason=reason,
        )
    )


async def create_staff(
    uow: UnitOfWork, who: Principal, data: StaffCreate, *, password: str | None = None, must_change: bool = True
) -> tuple[Account, str]:
    if not _staff_may_manage(who, data.roles, data.scopes) or (not data.scopes and not who.is_admin):
        raise Problem(
            403,
            "grant_outside_scope",
            "You cannot grant this access",
            "Staff create grid-worker and staff accounts within their own scope only.",
        )
    username = data.username.lower()
    taken = (
        await uow.session.execute(select(StaffCredential.account_id).where(StaffCredential.username == username))
    ).first()
    if taken is not None:
        raise conflict("username_taken", "This user name is taken.")
    temporary = password or passwords.temporary_password()
    account = Account(kind=AccountKind.staff, roles=data.roles, scopes=data.scopes, display_name=data.display_name)
    uow.session.add(account)
    await uow.session.flush()
    uow.session.add(
        StaffCredential(
            account_id=account.id,
            username=username,
            password_hash=await asyncio.to_thread(passwords.hash_password, temporary),
            must_change_password=must_change,
        )
    )
    _grant(uow, who, account, "created", data.reason)
    uow.emit(
        AccountCreated(
            account_id=account.id,
            occurred_at=utcnow(),
            kind="staff",
            roles=account.roles,
            scopes=account.scopes,
            display_name=account.display_name,
        )
    )
    return account, temporary


async def change_access(uow: UnitOfWork, who: Principal, account_id: UUID, data: AccessUpdate) -> Account:
    account = await get_account(uow, who, account_id)
    if str(account.id) == who.sub and not who.is_admin:
        raise Problem(403, "grant_outside_scope", "You cannot change your own access", "Ask an admin.")
    if not _staff_may_manage(who, account.roles, account.scopes) or not _staff_may_manage(who, data.roles, data.scopes):
        raise Problem(
            403,
            "grant_outside_scope",
            "You cannot grant this access",
            "Staff grant grid-worker and staff access within their own scope only.",
        )
    if account.roles == data.roles and account.scopes == data.scopes:
        return account
    account.roles = data.roles
    account.scopes = data.scopes
    account.updated_at = utcnow()
    _grant(uow, who, account, "access_changed", data.reason)
    uow.emit(
        AccountAccessChanged(
            account_id=account.id,
            occurred_at=utcnow(),
            roles=account.roles,
            scopes=account.scopes,
            changed_by=who.sub,
            reason=data.reason,
        )
    )
    return account


async def set_status(uow: UnitOfWork, who: Principal, account_id: UUID, status: AccountStatus, reason: str) -> Account:
    account = await get_account(uow, who, account_id)
    if account.status == status:
        return account  # idempotent
    if str(account.id) == who.sub:
        raise conflict("cannot_disable_self", "An admin cannot disable their own account.")
    account.status = status.value
    account.updated_at = utcnow()
    account.disabled_at = utcnow() if status == AccountStatus.disabled else None
    if status == AccountStatus.disabled:
        await sessions.revoke_account(uow, account.id, "account_disabled")
    _grant(uow, who, account, status.value if status == AccountStatus.disabled else "enabled", reason)
    uow.emit(
        AccountStatusChanged(
            account_id=account.id, occurred_at=utcnow(), status=status.value, changed_by=who.sub, reason=reason
        )
    )
    return account


async def reset_password(uow: UnitOfWork, who: Principal, account_id: UUID, *, reset_totp: bool) -> str:
    account = await get_account(uow, who, account_id)
    cred = await uow.session.get(StaffCredential, account.id)
    if cred is None:
        raise conflict("not_a_staff_account", "Only staff accounts have passwords.")
    temporary = passwords.temporary_password()
    cred.password_hash = await asyncio.to_thread(passwords.hash_password, temporary)
    cred.must_change_password = True
    if reset_totp:
        cred.totp_enabled = False
        cred.totp_secret_enc = None
    await sessions.revoke_account(uow, account.id, "password_reset")
    await uow.session.execute(sa.delete(THROTTLES).where(THROTTLES.c.key == f"user:{cred.username}"))
    _grant(uow, who, account, "password_reset" + ("+totp" if reset_totp else ""), "admin reset")
    return temporary


async def grants(uow: UnitOfWork, who: Principal, account_id: UUID, limit: int) -> list[GrantPublic]:
    await get_account(uow, who, account_id)
    rows = (
        await uow.session.execute(
            select(AccessGrant)
            .where(AccessGrant.account_id == account_id)
            .order_by(col(AccessGrant.at).desc())
            .limit(limit)
        )
    ).scalars()
    return [GrantPublic.model_validate(r, from_attributes=True) for r in rows]
