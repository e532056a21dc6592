"""Signing in with WeChat (the mini-program's login code), the app access token it needs, and the phone number a
resident shares. Use cases take a unit of work and never commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from minsheng.contracts.identity import AccountContactChanged, AccountCreated
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, not_found
from minsheng.platform.ids import as_utc, utcnow, uuid7
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.uow import UnitOfWork
from services.identity import config, sessions
from services.identity.accounts import account_id_of, locale_of
from services.identity.models import (
    Account,
    AccountKind,
    AccountStatus,
    TokenPair,
    WechatAppToken,
    WechatIdentity,
    on_postgres,
)
from services.identity.sealing import open_app_token, open_wechat, seal_app_token, seal_wechat
from services.identity.wechat import TOKEN_INVALID, WechatClient, WechatError, problem_for


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
    # Every hash the row may carry: the current lookup key's and, until `rotate-data --rehash` is done after a
    # lookup key of its own was set, the original derivation's. A row found under the old one moves to the new.
    digests = cipher.lookup_hashes(session.openid)
    digest = digests[0]
    if on_postgres(uow.session):  # the returning user in one statement (sessions.returning_wechat_login)
        refresh, family = sessions.new_refresh_token(), uuid7()
        done = await sessions.returning_wechat_login(
            uow,
            openid_hashes=digests,
            seal=lambda account_id: (
                seal_wechat(cipher, "session_key_enc", account_id, session.session_key),
                seal_wechat(cipher, "unionid_enc", account_id, session.unionid) if session.unionid else None,
            ),
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
            phone = open_wechat(cipher, "phone_enc", account.id, phone_enc)
            view = sessions.public(account, phone=phone, openid=session.openid)
            return await sessions.issue(
                uow, runtime, account, ["wechat"], family_id=family, view=view, stored_refresh=refresh
            )
    # one round trip for the returning user: the identity and its account together
    found = (
        await uow.session.execute(
            select(WechatIdentity, Account)
            .join(Account, col(Account.id) == col(WechatIdentity.account_id))
            .where(col(WechatIdentity.openid_hash).in_(digests))
        )
    ).first()
    if found is None:
        account = Account(kind=AccountKind.wechat, roles=[Role.resident.value])
        ident = WechatIdentity(
            account_id=account.id,
            appid=client.appid,
            openid_hash=digest,
            openid_enc=seal_wechat(cipher, "openid_enc", account.id, session.openid) or "",
        )
        uow.session.add(account)
        await uow.session.flush()
        uow.session.add(ident)
        now = utcnow()
        locale = locale_of(account)
        uow.emit(
            AccountCreated(account_id=account.id, occurred_at=now, kind="wechat", roles=account.roles, locale=locale)
        )
        uow.emit(
            AccountContactChanged(account_id=account.id, occurred_at=now, wechat_openid=session.openid, locale=locale)
        )
        outcome = "created"
    else:
        ident, account = found
        ident.openid_hash = digest  # re-hashed on the way, if it was under the original derivation
        outcome = "ok"
    if account.status != AccountStatus.active:
        account_id = account.id
        await uow.rollback()  # the request's connection goes back before audit_alone takes one
        await sessions.audit_alone(runtime, "wechat_login", "disabled", account_id=account_id, address_hash=address)
        raise Problem(403, "account_disabled", "This account is disabled", "Ask your community office.")
    ident.session_key_enc = seal_wechat(cipher, "session_key_enc", account.id, session.session_key)  # stays here
    if session.unionid:
        ident.unionid_enc = seal_wechat(cipher, "unionid_enc", account.id, session.unionid)
    ident.last_login_at = utcnow()
    sessions.audit(uow, "wechat_login", outcome, account_id=account.id, address_hash=address)
    view = sessions.public(
        account, phone=open_wechat(cipher, "phone_enc", account.id, ident.phone_enc), openid=session.openid
    )
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
        token = open_app_token(cipher, row.appid, row.token_enc) if row is not None else None
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
                row = WechatAppToken(
                    appid=client.appid, token_enc=seal_app_token(cipher, client.appid, token), expires_at=expires
                )
                uow.session.add(row)
            else:
                row.token_enc = seal_app_token(cipher, client.appid, token)
                row.expires_at = expires
            await uow.commit()
        runtime.state["app_token"] = (token, as_utc(row.expires_at))
        return token


async def wechat_phone(
    uow: UnitOfWork, runtime: ServiceRuntime, cipher: FieldCipher, who: Principal, code: str
) -> tuple[str, WechatIdentity]:
    account_id = account_id_of(who)
    if await uow.session.get(WechatIdentity, account_id) is None:
        raise Problem(
            409,
            "not_a_wechat_account",
            "Not a WeChat account",
            "Only a mini-program account can bind a WeChat phone number.",
        )
    # WeChat is called holding no connection: the app token may need one of its own (a refresh), and a
    # request waiting on WeChat should not keep one from the pool meanwhile. The identity is read again after.
    await uow.rollback()
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
        await sessions.audit_alone(runtime, "wechat_phone", f"wechat_{exc.errcode}", account_id=account_id)
        raise problem_for(exc) from exc
    ident = await uow.session.get(WechatIdentity, account_id)
    if ident is None:  # the account went away meanwhile
        raise not_found("account", account_id)
    ident.phone_enc = seal_wechat(cipher, "phone_enc", ident.account_id, phone)
    ident.phone_hash = cipher.lookup_hash(phone)
    ident.phone_verified_at = utcnow()
    openid = open_wechat(cipher, "openid_enc", ident.account_id, ident.openid_enc)
    account = await uow.session.get(Account, ident.account_id)
    uow.emit(  # the whole contact as it now is: the language too, or the event would reset it to zh-CN
        AccountContactChanged(
            account_id=ident.account_id,
            occurred_at=utcnow(),
            wechat_openid=openid,
            phone=phone,
            locale=locale_of(account) if account is not None else "zh-CN",
        )
    )
    sessions.audit(uow, "wechat_phone", "ok", account_id=ident.account_id)
    return phone, ident
