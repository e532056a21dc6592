"""Sessions: access tokens (short, signed) and refresh tokens (opaque, stored as SHA-256, rotated on every use,
a reused one revokes its whole family), plus the sign-in audit and lockout bookkeeping."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.auth import mint_token
from minsheng.platform.errors import Problem, too_many
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.privacy import mask_phone
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.identity import config
from services.identity.models import (
    REFRESH_TOKENS,
    THROTTLES,
    Account,
    AccountPublic,
    AccountStatus,
    AuthEvent,
    RefreshToken,
    SigninThrottle,
    StaffCredential,
    TokenPair,
    WechatIdentity,
    on_postgres,
)

ACCOUNTS = table_of(Account)
AUTH_EVENTS = table_of(AuthEvent)
WECHAT_IDENTITIES = table_of(WechatIdentity)
STAFF_CREDENTIALS = table_of(StaffCredential)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mask_openid(openid: str | None) -> str | None:
    if not openid:
        return openid
    return f"{openid[:4]}****{openid[-4:]}"


def public(
    account: Account,
    *,
    cred: StaffCredential | None = None,
    wechat: WechatIdentity | None = None,
    phone: str | None = None,
    openid: str | None = None,
    username: str | None = None,
    totp_enabled: bool | None = None,
) -> AccountPublic:
    return AccountPublic(
        id=account.id,
        kind=account.kind,
        status=account.status,
        roles=list(account.roles),  # type: ignore[arg-type]
        scopes=list(account.scopes),
        display_name=account.display_name,
        locale=account.locale,
        username=cred.username if cred else username,
        phone=mask_phone(phone),
        wechat_openid=mask_openid(openid),
        totp_enabled=cred.totp_enabled if cred else totp_enabled,
        created_at=account.created_at,
    )


def refresh_ttl(kind: str) -> int:
    return config.get().staff_refresh_ttl_seconds if kind == "staff" else config.get().refresh_ttl_seconds


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


async def issue(
    uow: UnitOfWork,
    runtime: ServiceRuntime,
    account: Account,
    amr: Sequence[str],
    *,
    family_id: UUID | None = None,
    view: AccountPublic,
    stored_refresh: str | None = None,
) -> TokenPair:
    """A new access token and a new refresh token (a new family unless continuing one). ``stored_refresh``:
    a refresh token of family ``family_id`` already written (by ``returning_wechat_login``)."""
    settings = runtime.settings
    ttl = refresh_ttl(account.kind)
    family = family_id or uuid7()
    refresh = stored_refresh or new_refresh_token()
    if stored_refresh is None:
        uow.session.add(
            RefreshToken(
                token_hash=token_hash(refresh),
                family_id=family,
                account_id=account.id,
                amr=list(amr),
                expires_at=utcnow() + timedelta(seconds=ttl),
            )
        )
    access = mint_token(
        runtime.keyring,
        settings,
        str(account.id),
        account.roles,
        account.scopes,
        name=account.display_name,
        sid=str(family),
        amr=amr,
    )
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh,
        refresh_expires_in=ttl,
        account=view,
    )


@cache
def _wechat_account_statement() -> sa.Select[Any]:
    w = WECHAT_IDENTITIES
    return sa.select(w.c.account_id).where(w.c.openid_hash.in_(sa.bindparam("p_openid_hashes", expanding=True)))


@cache
def _returning_login_statement() -> sa.Select[Any]:
    """Built once (bound parameters only), so each login costs a cached compile, not a construction."""
    w, a, e, r = WECHAT_IDENTITIES, ACCOUNTS, AUTH_EVENTS, REFRESH_TOKENS

    def p(name: str, column: sa.Column[Any]) -> Any:  # ``p_``: a parameter named like a column would SET it
        return sa.bindparam(name, type_=column.type)

    ident = (
        sa.update(w)
        .where(w.c.account_id == p("p_account_id", w.c.account_id))
        .values(
            openid_hash=p("p_openid_hash", w.c.openid_hash),
            session_key_enc=p("p_session_key_enc", w.c.session_key_enc),
            unionid_enc=sa.func.coalesce(p("p_unionid_enc", w.c.unionid_enc), w.c.unionid_enc),
            last_login_at=p("p_now", w.c.last_login_at),
        )
        .returning(w.c.account_id, w.c.phone_enc)
        .cte("ident")
    )
    acct = sa.select(*a.c, ident.c.phone_enc).select_from(a.join(ident, a.c.id == ident.c.account_id)).cte("acct")
    active = acct.c.status == AccountStatus.active.value
    signed_in = sa.insert(e).from_select(
        ["id", "at", "account_id", "kind", "outcome", "address_hash", "detail"],
        sa.select(
            p("p_event_id", e.c.id),
            p("p_now", e.c.at),
            acct.c.id,
            sa.literal("wechat_login", e.c.kind.type),
            sa.literal("ok", e.c.outcome.type),
            p("p_address_hash", e.c.address_hash),
            p("p_detail", e.c.detail),
        ).where(active),
    )
    token = sa.insert(r).from_select(
        ["id", "token_hash", "family_id", "account_id", "amr", "created_at", "expires_at"],
        sa.select(
            p("p_token_id", r.c.id),
            p("p_token_hash", r.c.token_hash),
            p("p_family_id", r.c.family_id),
            acct.c.id,
            p("p_amr", r.c.amr),
            p("p_now", r.c.created_at),
            p("p_expires_at", r.c.expires_at),
        ).where(active),
    )
    return sa.select(acct).add_cte(signed_in.cte("signed_in"), token.cte("token"))


async def returning_wechat_login(
    uow: UnitOfWork,
    *,
    openid_hashes: list[str],
    seal: Callable[[UUID], tuple[str | None, str | None]],
    refresh: str,
    family_id: UUID,
    address_hash: str | None,
) -> tuple[Account, str | None] | None:
    """PostgreSQL, a returning WeChat user: find the account by the openid's hash, then in ONE statement store
    the new session key, and — if the account is active — record the sign-in and write the refresh token;
    answer the account and the encrypted phone (``None``: no such user yet). ``openid_hashes``: every hash the
    row may carry (``lookup_hashes``, the current one first, which the row gets). ``seal``: the session key and
    the unionid sealed for the account's row (bound to it, so the account id must be known first). Four round
    trips per login (BEGIN, the account id, this, COMMIT) instead of six. A disabled account gets nothing
    inserted, and the caller's rollback undoes the session-key update."""
    connection = await uow.session.connection()  # Core: the ORM adds nothing to these statements but cost
    account_id = (
        await connection.execute(_wechat_account_statement(), {"p_openid_hashes": openid_hashes})
    ).scalar_one_or_none()
    if account_id is None:
        return None
    session_key_enc, unionid_enc = seal(account_id)
    now = utcnow()
    params: dict[str, Any] = {
        "p_account_id": account_id,
        "p_openid_hash": openid_hashes[0],
        "p_session_key_enc": session_key_enc,
        "p_unionid_enc": unionid_enc,
        "p_now": now,
        "p_event_id": uuid7(),
        "p_address_hash": address_hash,
        "p_detail": {},
        "p_token_id": uuid7(),
        "p_token_hash": token_hash(refresh),
        "p_family_id": family_id,
        "p_amr": ["wechat"],
        "p_expires_at": now + timedelta(seconds=refresh_ttl("wechat")),
    }
    row = (await connection.execute(_returning_login_statement(), params)).mappings().first()
    if row is None:
        return None
    fields = dict(row)
    phone_enc = fields.pop("phone_enc")
    return Account(**fields), phone_enc


@cache
def _rotate_statement() -> sa.Select[Any]:
    """Built once: see ``rotate_refresh_token``."""
    r, a, w, c = REFRESH_TOKENS, ACCOUNTS, WECHAT_IDENTITIES, STAFF_CREDENTIALS

    def p(name: str, column: sa.Column[Any]) -> Any:  # ``p_``: a parameter named like a column would SET it
        return sa.bindparam(name, type_=column.type)

    active = sa.select(a.c.id).where(a.c.status == AccountStatus.active.value)
    old = (
        sa.update(r)
        .where(
            r.c.token_hash == p("p_old_hash", r.c.token_hash),
            r.c.used_at.is_(None),
            r.c.revoked_at.is_(None),
            r.c.expires_at > p("p_now", r.c.expires_at),
            r.c.account_id.in_(active.scalar_subquery()),
        )
        .values(used_at=p("p_now", r.c.used_at))
        .returning(r.c.family_id, r.c.account_id, r.c.amr)
        .cte("old")
    )
    staff = a.c.kind == "staff"
    new = sa.insert(r).from_select(
        ["id", "token_hash", "family_id", "account_id", "amr", "created_at", "expires_at"],
        sa.select(
            p("p_new_id", r.c.id),
            p("p_new_hash", r.c.token_hash),
            old.c.family_id,
            old.c.account_id,
            old.c.amr,
            p("p_now", r.c.created_at),
            sa.case((staff, p("p_staff_expires", r.c.expires_at)), else_=p("p_expires", r.c.expires_at)),
        ).select_from(old.join(a, a.c.id == old.c.account_id)),
    )
    return (
        sa.select(
            *a.c,
            old.c.family_id.label("rt_family_id"),
            old.c.amr.label("rt_amr"),
            w.c.phone_enc.label("w_phone_enc"),
            w.c.openid_enc.label("w_openid_enc"),
            c.c.username.label("c_username"),
            c.c.totp_enabled.label("c_totp_enabled"),
        )
        .select_from(
            old.join(a, a.c.id == old.c.account_id)
            .outerjoin(w, w.c.account_id == a.c.id)
            .outerjoin(c, c.c.account_id == a.c.id)
        )
        .add_cte(new.cte("new"))
    )


async def rotate_refresh_token(
    uow: UnitOfWork, token: str
) -> tuple[Account, UUID, list[str], str, dict[str, Any]] | None:
    """PostgreSQL, the everyday refresh in ONE statement: mark the live token used and write its successor in
    the same family, answering the account (and what its view shows). ``None`` when the token is not live —
    unknown, revoked, expired, used before (reuse: the caller's ``use_refresh_token`` finds out which and
    revokes the family) — or its account is disabled. Two refreshes racing with one token: the second's UPDATE
    waits for the first's row lock, then matches nothing."""
    now = utcnow()
    refresh = new_refresh_token()
    params: dict[str, Any] = {
        "p_old_hash": token_hash(token),
        "p_now": now,
        "p_new_id": uuid7(),
        "p_new_hash": token_hash(refresh),
        "p_expires": now + timedelta(seconds=refresh_ttl("wechat")),
        "p_staff_expires": now + timedelta(seconds=refresh_ttl("staff")),
    }
    connection = await uow.session.connection()
    row = (await connection.execute(_rotate_statement(), params)).mappings().first()
    if row is None:
        return None
    fields = dict(row)
    family, amr = fields.pop("rt_family_id"), fields.pop("rt_amr")
    extra = {k: fields.pop(k) for k in ("w_phone_enc", "w_openid_enc", "c_username", "c_totp_enabled")}
    return Account(**fields), family, list(amr), refresh, extra


async def revoke_family(uow: UnitOfWork, family_id: UUID, reason: str) -> int:
    return await _revoke(uow, REFRESH_TOKENS.c.family_id == family_id, reason)


async def revoke_family_of_token(uow: UnitOfWork, account_id: UUID, refresh_token: str, reason: str) -> int:
    """End the session a refresh token belongs to, if it is ``account_id``'s (another's token changes nothing)."""
    query = select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token))
    row = (await uow.session.execute(query)).scalar_one_or_none()
    if row is None or row.account_id != account_id:
        return 0
    return await revoke_family(uow, row.family_id, reason)


async def revoke_account(uow: UnitOfWork, account_id: UUID, reason: str) -> int:
    return await _revoke(uow, REFRESH_TOKENS.c.account_id == account_id, reason)


async def _revoke(uow: UnitOfWork, which: sa.ColumnElement[bool], reason: str) -> int:
    """Revoke the live refresh tokens ``which`` selects; how many."""
    t = REFRESH_TOKENS
    result = await uow.session.execute(
        sa.update(t).where(which, t.c.revoked_at.is_(None)).values(revoked_at=utcnow(), revoked_reason=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ReusedToken(Exception):
    def __init__(self, account_id: UUID) -> None:
        self.account_id = account_id


async def use_refresh_token(uow: UnitOfWork, token: str) -> tuple[RefreshToken, Account]:
    """The live refresh token and its account, marked used. A token used before revokes its family and
    raises ReusedToken (the caller commits the revocation)."""
    query = (
        select(RefreshToken, Account)
        .join(Account, col(Account.id) == col(RefreshToken.account_id))
        .where(RefreshToken.token_hash == token_hash(token))
    )
    if on_postgres(uow.session):
        query = query.with_for_update(of=RefreshToken)  # type: ignore[arg-type]
    found = (await uow.session.execute(query)).first()
    row, account = found if found is not None else (None, None)
    invalid = Problem(
        401,
        "invalid_refresh_token",
        "The refresh token is not valid",
        "Sign in again.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    if row is None or row.revoked_at is not None:
        raise invalid
    if row.used_at is not None:
        await revoke_family(uow, row.family_id, "reuse_detected")
        raise ReusedToken(row.account_id)
    if as_utc(row.expires_at) <= utcnow():
        raise invalid
    if account is None or account.status != AccountStatus.active:
        raise invalid
    row.used_at = utcnow()
    return row, account


# --- audit ----------------------------------------------------------------------------------------------------


def audit(
    uow: UnitOfWork,
    kind: str,
    outcome: str,
    *,
    account_id: UUID | None = None,
    address_hash: str | None = None,
    **detail: Any,
) -> None:
    uow.session.add(
        AuthEvent(
            kind=kind,
            outcome=outcome,
            account_id=account_id,
            address_hash=address_hash,
            detail={k: str(v) for k, v in detail.items()},
        )
    )


async def audit_alone(runtime: ServiceRuntime, kind: str, outcome: str, **kw: Any) -> None:
    """An audit row in a transaction of its own (failed sign-ins, whose request rolls back)."""
    async with runtime.uow() as uow:
        audit(uow, kind, outcome, **kw)
        await uow.commit()


# --- lockout --------------------------------------------------------------------------------------------------


async def locked_for(uow: UnitOfWork, keys: Sequence[str]) -> float:
    """Seconds until every one of ``keys`` may try again (0: now)."""
    rows = (await uow.session.execute(select(SigninThrottle).where(col(SigninThrottle.key).in_(keys)))).scalars()
    now = utcnow()
    wait = 0.0
    for row in rows:
        if row.locked_until is not None and as_utc(row.locked_until) > now:
            wait = max(wait, (as_utc(row.locked_until) - now).total_seconds())
    return wait


async def record_failure(runtime: ServiceRuntime, key: str, threshold: int) -> None:
    """One more failure in a row for ``key``; from ``threshold`` on, a lockout doubling each time."""
    c = config.get()
    async with runtime.uow() as uow:
        query = select(SigninThrottle).where(SigninThrottle.key == key)
        if on_postgres(uow.session):
            query = query.with_for_update()
        row = (await uow.session.execute(query)).scalar_one_or_none()
        if row is None:
            row = SigninThrottle(key=key)
            uow.session.add(row)
        row.failures += 1
        row.updated_at = utcnow()
        if row.failures >= threshold:
            seconds = min(c.lockout_max_seconds, c.lockout_base_seconds * 2 ** (row.failures - threshold))
            row.locked_until = utcnow() + timedelta(seconds=seconds)
        try:
            await uow.commit()
        except sa.exc.IntegrityError:  # a concurrent first failure for the same key: count this one again
            return await record_failure(runtime, key, threshold)


async def clear_failures(uow: UnitOfWork, key: str) -> None:
    await uow.session.execute(sa.delete(THROTTLES).where(THROTTLES.c.key == key))


def too_many_failures(wait: float) -> Problem:
    return too_many("too_many_attempts", "Too many failed sign-ins", "Try again in {seconds} s.", wait=wait)
