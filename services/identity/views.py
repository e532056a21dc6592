"""HTTP API of the identity service (mounted at ``/identity``): sign-in, tokens, keys, accounts. Thin: parse,
authorize, call the service layer, commit once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable

from minsheng.platform import ratelimit
from minsheng.platform.auth import Principal, Role, current_principal, require
from minsheng.platform.errors import Problem
from minsheng.platform.pagination import Page, PageQuery
from minsheng.platform.privacy import mask_phone
from minsheng.platform.ratelimit import RATE_LIMITED
from minsheng.platform.routes import Cipher, from_row
from minsheng.platform.service import Runtime, UoW
from minsheng.platform.uow import UnitOfWork
from services.identity import accounts, config, passwords, sessions
from services.identity import staff_login as staff_logins
from services.identity import wechat_login as wechat_logins
from services.identity.models import (
    AccessUpdate,
    AccountFilters,
    AccountPublic,
    AccountStatus,
    GrantPublic,
    LocaleUpdate,
    LogoutRequest,
    PasswordChange,
    PasswordReset,
    PhonePublic,
    RefreshRequest,
    StaffCreate,
    StaffCreated,
    StaffLogin,
    StatusChange,
    TokenPair,
    TotpConfirm,
    TotpProvisioning,
    TotpSetup,
    WechatLogin,
    WechatPhone,
    on_postgres,
)
from services.identity.sealing import open_wechat

router = APIRouter()


async def _address(request: Request) -> str | None:
    """The caller's address (behind the gateway: the forwarded one), as a keyed hash; rate-limited per address."""
    host = request.client.host if request.client else None
    c = config.get()
    ratelimit.check(f"signin:{host}", c.signin_rate_per_second, c.signin_burst)
    return passwords.address_hash(host)


Address = Annotated[str | None, Depends(_address)]
Who = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Manager = Annotated[Principal, Depends(require(Role.staff))]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _tokens(pair: TokenPair) -> JSONResponse:
    return JSONResponse(pair.model_dump(mode="json"), headers=_NO_STORE)


def _sign_in(path: str, **route: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A sign-in route: ``POST``, rate-limited per address (its ``Address`` dependency), documented so."""
    return router.post(path, tags=["sign-in"], responses=RATE_LIMITED, **route)


# --- discovery and keys ---------------------------------------------------------------------------------------


@router.get("/.well-known/jwks.json", tags=["keys"], summary="The public keys that verify access tokens (JWKS)")
async def jwks(runtime: Runtime) -> JSONResponse:
    return JSONResponse(runtime.keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/.well-known/openid-configuration", tags=["keys"], summary="Discovery document")
async def discovery(request: Request, runtime: Runtime) -> JSONResponse:
    s = runtime.settings
    return JSONResponse(
        {
            "issuer": s.jwt_issuer,
            "jwks_uri": str(request.url_for("jwks")),
            "token_endpoint": str(request.url_for("refresh")),
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["refresh_token"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["sub", "roles", "scope", "sid", "amr", "exp", "iat", "iss", "aud", "name"],
            "audience": s.jwt_audience,
            "access_token_ttl_seconds": s.access_token_ttl_seconds,
        },
        headers={"Cache-Control": "public, max-age=300"},
    )


# --- WeChat mini-program --------------------------------------------------------------------------------------


@_sign_in(
    "/wechat/login",
    response_model=TokenPair,
    summary="Sign in with the code from wx.login() (the account is created on first sign-in)",
)
async def wechat_login(body: WechatLogin, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> JSONResponse:
    pair = await wechat_logins.wechat_login(uow, runtime, cipher, body.code, address)
    await _commit_login(uow)
    return _tokens(pair)


async def _commit_login(uow: UnitOfWork) -> None:
    import sqlalchemy as sa

    try:
        await uow.commit()
    except sa.exc.IntegrityError as exc:  # two first sign-ins of one person at the same moment
        raise Problem(
            409, "signin_conflict", "Signed in twice at once", "Retry the sign-in.", headers={"Retry-After": "1"}
        ) from exc


@_sign_in(
    "/wechat/phone",
    response_model=PhonePublic,
    summary="Bind the WeChat-verified phone number (code from getPhoneNumber)",
)
async def wechat_phone(
    body: WechatPhone, uow: UoW, runtime: Runtime, cipher: Cipher, who: Who, address: Address
) -> PhonePublic:
    phone, ident = await wechat_logins.wechat_phone(uow, runtime, cipher, who, body.code)
    await uow.commit()
    assert ident.phone_verified_at is not None
    return PhonePublic(phone=mask_phone(phone) or "", verified_at=ident.phone_verified_at)


# --- tokens ---------------------------------------------------------------------------------------------------


@router.post(
    "/refresh",
    response_model=TokenPair,
    tags=["tokens"],
    summary="A new access token for a refresh token (which is replaced: use the new one next time)",
    responses=RATE_LIMITED,
)
async def refresh(body: RefreshRequest, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> JSONResponse:
    if on_postgres(uow.session):  # the everyday case in one statement; anything else below finds out why
        rotated = await sessions.rotate_refresh_token(uow, body.refresh_token)
        if rotated is not None:
            account, family, amr, token, extra = rotated
            view = sessions.public(
                account,
                phone=open_wechat(cipher, "phone_enc", account.id, extra["w_phone_enc"]),
                openid=open_wechat(cipher, "openid_enc", account.id, extra["w_openid_enc"]),
                username=extra["c_username"],
                totp_enabled=extra["c_totp_enabled"],
            )
            pair = await sessions.issue(uow, runtime, account, amr, family_id=family, view=view, stored_refresh=token)
            await uow.commit()
            return _tokens(pair)
    try:
        row, account = await sessions.use_refresh_token(uow, body.refresh_token)
    except sessions.ReusedToken as reused:
        sessions.audit(uow, "refresh", "reuse_detected", account_id=reused.account_id, address_hash=address)
        await uow.commit()
        raise Problem(
            401,
            "refresh_token_reused",
            "This sign-in session was ended",
            "A refresh token was used twice: every token of this session is revoked. Sign in again.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    pair = await sessions.issue(
        uow, runtime, account, row.amr, family_id=row.family_id, view=await accounts.account_view(uow, cipher, account)
    )
    await uow.commit()
    return _tokens(pair)


@router.post(
    "/logout",
    status_code=204,
    tags=["tokens"],
    summary="End this sign-in session (or every one: `everywhere`); access tokens expire within minutes",
)
async def logout(body: LogoutRequest, uow: UoW, who: Who) -> None:
    account_id = accounts.account_id_of(who)
    if body.everywhere:
        await sessions.revoke_account(uow, account_id, "logout_everywhere")
    if who.sid:
        await sessions.revoke_family(uow, UUID(who.sid), "logout")
    if body.refresh_token:
        await sessions.revoke_family_of_token(uow, account_id, body.refresh_token, "logout")
    sessions.audit(uow, "logout", "ok", account_id=account_id)
    await uow.commit()


@router.get("/me", tags=["accounts"], summary="Your account (personal data masked)")
async def me(uow: UoW, who: Who, cipher: Cipher) -> AccountPublic:
    return await accounts.account_view(uow, cipher, await accounts.me(uow, who))


@router.put(
    "/me/locale", tags=["accounts"], summary="Your preferred language for the messages sent to you (zh-CN or en)"
)
async def set_locale(body: LocaleUpdate, uow: UoW, who: Who, cipher: Cipher) -> AccountPublic:
    account = await accounts.set_locale(uow, cipher, who, body.locale)
    view = await accounts.account_view(uow, cipher, account)
    await uow.commit()
    return view


# --- staff ----------------------------------------------------------------------------------------------------


@_sign_in(
    "/staff/login",
    response_model=TokenPair,
    summary="Staff sign-in: user name, password and (admins, pii:reveal holders) a TOTP code",
)
async def staff_login(body: StaffLogin, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> JSONResponse:
    pair = await staff_logins.staff_login(uow, runtime, cipher, body, address)
    await uow.commit()  # also when a password change comes first: the TOTP code is spent either way
    if pair is None:
        raise staff_logins.password_change_required()
    return _tokens(pair)


@_sign_in(
    "/staff/password",
    status_code=204,
    summary="Change your password (required after an admin reset); ends your other sessions",
)
async def change_password(body: PasswordChange, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> None:
    await staff_logins.change_password(
        uow, runtime, cipher, body.username, body.current_password, body.new_password, body.totp, address
    )
    await uow.commit()


@_sign_in(
    "/staff/totp/setup",
    response_model=TotpProvisioning,
    summary="Start setting up a TOTP authenticator (user name + password)",
)
async def totp_setup(body: TotpSetup, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> JSONResponse:
    provisioning = await staff_logins.totp_setup(uow, runtime, cipher, body.username, body.password, address)
    await uow.commit()
    return JSONResponse(provisioning.model_dump(), headers=_NO_STORE)


@_sign_in("/staff/totp/confirm", status_code=204, summary="Finish the set-up with a code from the authenticator")
async def totp_confirm(body: TotpConfirm, uow: UoW, runtime: Runtime, cipher: Cipher, address: Address) -> None:
    await staff_logins.totp_confirm(uow, runtime, cipher, body.username, body.password, body.code, address)
    await uow.commit()


# --- accounts -------------------------------------------------------------------------------------------------


@router.post(
    "/accounts",
    response_model=StaffCreated,
    status_code=201,
    tags=["accounts"],
    summary="Create a staff account (admins; staff for grid workers and staff in their own scope)",
)
async def create_staff(body: StaffCreate, uow: UoW, who: Manager, cipher: Cipher) -> JSONResponse:
    account, temporary = await accounts.create_staff(uow, who, body)
    await _commit_login(uow)
    view = await accounts.account_view(uow, cipher, account)
    return JSONResponse(
        StaffCreated(account=view, temporary_password=temporary).model_dump(mode="json"),
        status_code=201,
        headers=_NO_STORE,
    )


@router.get("/accounts", tags=["accounts"], summary="Accounts (admins)")
async def list_accounts(
    uow: UoW,
    who: Admin,
    cipher: Cipher,
    filters: Annotated[AccountFilters, Query()],
    page: PageQuery,
) -> Page[AccountPublic]:
    found = await accounts.list_accounts(uow, filters, page)
    return found.with_items(await accounts.account_views(uow, cipher, found.items))


@router.get("/accounts/{account_id}", tags=["accounts"])
async def get_account(account_id: UUID, uow: UoW, who: Who, cipher: Cipher) -> AccountPublic:
    return await accounts.account_view(uow, cipher, await accounts.get_account(uow, who, account_id))


@router.get("/accounts/{account_id}/grants", tags=["accounts"], summary="Who granted or withdrew what, when and why")
async def account_grants(account_id: UUID, uow: UoW, who: Manager, page: PageQuery) -> Page[GrantPublic]:
    return (await accounts.grants(uow, who, account_id, page)).map(from_row(GrantPublic))


@router.put(
    "/accounts/{account_id}/access",
    tags=["accounts"],
    summary="Set an account's roles and scopes (the whole new set), with a reason",
)
async def change_access(account_id: UUID, body: AccessUpdate, uow: UoW, who: Manager, cipher: Cipher) -> AccountPublic:
    account = await accounts.change_access(uow, who, account_id, body)
    await uow.commit()
    return await accounts.account_view(uow, cipher, account)


@router.post(
    "/accounts/{account_id}/disable",
    tags=["accounts"],
    summary="Disable: refresh tokens die now, access tokens within their lifetime",
)
async def disable(account_id: UUID, body: StatusChange, uow: UoW, who: Admin, cipher: Cipher) -> AccountPublic:
    account = await accounts.set_status(uow, who, account_id, AccountStatus.disabled, body.reason)
    await uow.commit()
    return await accounts.account_view(uow, cipher, account)


@router.post("/accounts/{account_id}/enable", tags=["accounts"])
async def enable(account_id: UUID, body: StatusChange, uow: UoW, who: Admin, cipher: Cipher) -> AccountPublic:
    account = await accounts.set_status(uow, who, account_id, AccountStatus.active, body.reason)
    await uow.commit()
    return await accounts.account_view(uow, cipher, account)


@router.post(
    "/accounts/{account_id}/password-reset",
    response_model=PasswordReset,
    tags=["accounts"],
    summary="A temporary password (shown once); the holder must change it at the next sign-in",
)
async def password_reset(account_id: UUID, uow: UoW, who: Admin, reset_totp: bool = False) -> JSONResponse:
    temporary = await accounts.reset_password(uow, who, account_id, reset_totp=reset_totp)
    await uow.commit()
    return JSONResponse({"temporary_password": temporary}, headers=_NO_STORE)
