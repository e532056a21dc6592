"""Accounts: who may manage whom (admins, and staff within their scope), staff onboarding, access and status
changes, password resets, the grant history. Use cases take a unit of work and never commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountStatusChanged,
    Locale,
)
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, UniqueRule, conflict, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import PII_REVEAL_SCOPE, FieldCipher
from minsheng.platform.sql import json_list_holds
from minsheng.platform.uow import UnitOfWork
from services.identity import passwords, sessions
from services.identity.models import (
    THROTTLES,
    AccessGrant,
    AccessUpdate,
    Account,
    AccountFilters,
    AccountKind,
    AccountPublic,
    AccountStatus,
    StaffCreate,
    StaffCredential,
    WechatIdentity,
)
from services.identity.sealing import open_wechat

USERNAME_TAKEN = UniqueRule(StaffCredential, ["username"], "username_taken", "This user name is taken.")


def account_id_of(who: Principal) -> UUID:
    try:
        return UUID(who.sub)
    except ValueError:
        raise Problem(
            404,
            "account_not_found",
            "Account not found",
            "This token's subject is not an identity account (a development token?).",
        ) from None


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
    return _view(cipher, account, cred, ident)


async def account_views(uow: UnitOfWork, cipher: FieldCipher, found: Sequence[Account]) -> list[AccountPublic]:
    """``account_view`` of a page of accounts, their credentials and WeChat identities read in two queries."""
    staff = [a.id for a in found if a.kind == AccountKind.staff]
    others = [a.id for a in found if a.kind != AccountKind.staff]
    creds = await uow.session.execute(select(StaffCredential).where(col(StaffCredential.account_id).in_(staff)))
    idents = await uow.session.execute(select(WechatIdentity).where(col(WechatIdentity.account_id).in_(others)))
    cred_of = {c.account_id: c for c in creds.scalars()}
    ident_of = {i.account_id: i for i in idents.scalars()}
    return [_view(cipher, a, cred_of.get(a.id), ident_of.get(a.id)) for a in found]


def _view(
    cipher: FieldCipher, account: Account, cred: StaffCredential | None, ident: WechatIdentity | None
) -> AccountPublic:
    return sessions.public(
        account,
        cred=cred,
        phone=open_wechat(cipher, "phone_enc", ident.account_id, ident.phone_enc) if ident else None,
        openid=open_wechat(cipher, "openid_enc", ident.account_id, ident.openid_enc) if ident else None,
    )


def locale_of(account: Account) -> Locale:
    """The account's language as the account events name it (zh-CN unless it chose English)."""
    return "en" if account.locale == "en" else "zh-CN"


async def set_locale(uow: UnitOfWork, cipher: FieldCipher, who: Principal, locale: Locale) -> Account:
    """The caller's preferred language for what is sent to them. A change is published as
    ``AccountContactChanged`` with the contact as it now is (openid and verified phone of a WeChat account),
    so notify writes to them in it."""
    account = await me(uow, who)
    if account.locale != locale:
        account.locale = locale
        account.updated_at = utcnow()
        ident = await uow.session.get(WechatIdentity, account.id) if account.kind != AccountKind.staff else None
        uow.emit(
            AccountContactChanged(
                account_id=account.id,
                occurred_at=account.updated_at,
                wechat_openid=open_wechat(cipher, "openid_enc", ident.account_id, ident.openid_enc) if ident else None,
                phone=open_wechat(cipher, "phone_enc", ident.account_id, ident.phone_enc) if ident else None,
                locale=locale,
            )
        )
    return account


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
    account = await uow.session.get(Account, account_id_of(who))
    if account is None:
        raise not_found("account", who.sub)
    return account


async def list_accounts(uow: UnitOfWork, filters: AccountFilters, page: PageRequest) -> Page[Account]:
    in_id_order = Keyset.by_id(Account)
    query = in_id_order.query(select(Account), page)
    if filters.kind:
        query = query.where(Account.kind == filters.kind.value)
    if filters.status:
        query = query.where(Account.status == filters.status.value)
    if filters.role:
        query = query.where(json_list_holds(col(Account.roles), filters.role.value, postgres=uow.db.is_postgres))
    return in_id_order.page(list((await uow.session.execute(query)).scalars()), page)


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
        raise USERNAME_TAKEN.problem()
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


async def grants(uow: UnitOfWork, who: Principal, account_id: UUID, page: PageRequest) -> Page[AccessGrant]:
    """The account's access history, newest first."""
    await get_account(uow, who, account_id)
    query = select(AccessGrant).where(AccessGrant.account_id == account_id)
    return await keyset_page(uow.session, query, Keyset((col(AccessGrant.at), col(AccessGrant.id))), page)
