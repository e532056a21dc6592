"""The identity service's data: accounts, how they sign in, sessions, signing keys, audit (its own database)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel, field_validator
from pydantic import Field as PField
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.contracts.identity import Locale
from minsheng.platform.auth import Role
from minsheng.platform.fields import json_list, utc_now, utc_optional, uuid_pk
from minsheng.platform.inputs import text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.sql import table_of
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime


class IdentityModel(SQLModel, registry=registry()):
    pass


metadata = IdentityModel.metadata
platform_tables = install_platform_tables(metadata)

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,49}$"
SCOPE_PATTERN = r"^(\*|pii:reveal|[a-z_]{2,20}:[A-Za-z0-9_.-]{1,60})$"
ROLES = ("resident", "grid_worker", "rider", "merchant", "staff", "admin")


class AccountKind(StrEnum):
    wechat = "wechat"
    staff = "staff"


class AccountStatus(StrEnum):
    active = "active"
    disabled = "disabled"


# --- accounts -------------------------------------------------------------------------------------------------


class Account(IdentityModel, table=True):
    """A person: the ``sub`` of every token they get."""

    __tablename__ = "accounts"
    __table_args__ = (sa.Index("ix_accounts_kind_status", "kind", "status"),)

    id: UUID = uuid_pk()
    kind: str = Field(sa_type=sa.String(10))
    status: str = Field(default=AccountStatus.active, sa_type=sa.String(10))
    roles: list[str] = json_list()
    scopes: list[str] = json_list()
    display_name: str | None = Field(default=None, max_length=100)
    locale: str = Field(default="zh-CN", max_length=10)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()
    disabled_at: datetime | None = utc_optional()


class WechatIdentity(IdentityModel, table=True):
    """A mini-program user. openid, unionid, session_key and phone are encrypted; looked up by keyed hash."""

    __tablename__ = "wechat_identities"

    account_id: UUID = Field(primary_key=True, foreign_key="accounts.id")
    appid: str = Field(max_length=40)
    openid_hash: str = Field(max_length=64, unique=True)
    openid_enc: str = Field(sa_type=sa.Text)
    unionid_enc: str | None = Field(default=None, sa_type=sa.Text)
    session_key_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    phone_verified_at: datetime | None = utc_optional()
    last_login_at: datetime = utc_now()


class StaffCredential(IdentityModel, table=True):
    __tablename__ = "staff_credentials"

    account_id: UUID = Field(primary_key=True, foreign_key="accounts.id")
    username: str = Field(max_length=50, unique=True)
    password_hash: str = Field(max_length=200)
    must_change_password: bool = True
    password_changed_at: datetime | None = utc_optional()
    totp_secret_enc: str | None = Field(default=None, sa_type=sa.Text)
    totp_enabled: bool = False
    totp_last_step: int = 0  # a TOTP code is accepted once
    last_login_at: datetime | None = utc_optional()


class RefreshToken(IdentityModel, table=True):
    """One refresh token (its SHA-256 only). A family is a sign-in session (the ``sid``): each use rotates
    to a new token in the family; presenting a used one again revokes the whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (sa.Index("ix_refresh_family", "family_id"), sa.Index("ix_refresh_account", "account_id"))

    id: UUID = uuid_pk()
    token_hash: str = Field(max_length=64, unique=True)
    family_id: UUID
    account_id: UUID
    amr: list[str] = json_list()
    created_at: datetime = utc_now()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = utc_optional()
    revoked_at: datetime | None = utc_optional()
    revoked_reason: str | None = Field(default=None, max_length=40)


class AccessGrant(IdentityModel, table=True):
    """Audit of every change to an account's access or status: who, when, what, why."""

    __tablename__ = "access_grants"
    __table_args__ = (sa.Index("ix_grants_account", "account_id", "at"),)

    id: UUID = uuid_pk()
    account_id: UUID
    actor: str = Field(max_length=200)
    action: str = Field(max_length=30)  # created, access_changed, disabled, enabled, password_reset
    roles: list[str] = json_list()
    scopes: list[str] = json_list()
    reason: str = Field(default="", max_length=500)
    at: datetime = utc_now()


class AuthEvent(IdentityModel, table=True):
    """Audit of sign-in and token events. The source address is kept only as a keyed hash."""

    __tablename__ = "auth_events"
    __table_args__ = (sa.Index("ix_auth_events_at", "at"), sa.Index("ix_auth_events_account", "account_id"))

    id: UUID = uuid_pk()
    at: datetime = utc_now()
    account_id: UUID | None = None
    kind: str = Field(max_length=40)
    outcome: str = Field(max_length=40)
    address_hash: str | None = Field(default=None, max_length=64)
    detail: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)


class SigningKeyRow(IdentityModel, table=True):
    """The key store: ES256 keys, the private half encrypted with the field cipher."""

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=60)
    algorithm: str = Field(default="ES256", max_length=10)
    private_key_enc: str = Field(sa_type=sa.Text)
    created_at: datetime = utc_now()
    retire_at: datetime | None = utc_optional()


class SigninThrottle(IdentityModel, table=True):
    """Failed sign-ins in a row per key (``user:<name>`` or ``addr:<hash>``) and the lockout they caused."""

    __tablename__ = "signin_throttles"

    key: str = Field(primary_key=True, max_length=120)
    failures: int = 0
    locked_until: datetime | None = utc_optional()
    updated_at: datetime = utc_now()


class WechatAppToken(IdentityModel, table=True):
    """The mini-program's app access token (``cgi-bin/stable_token``), shared by every replica."""

    __tablename__ = "wechat_app_tokens"

    appid: str = Field(primary_key=True, max_length=40)
    token_enc: str = Field(sa_type=sa.Text)
    expires_at: datetime = Field(sa_type=UTCDateTime)


REFRESH_TOKENS: sa.Table = table_of(RefreshToken)
AUTH_EVENTS: sa.Table = table_of(AuthEvent)
THROTTLES: sa.Table = table_of(SigninThrottle)


def on_postgres(session: object) -> bool:
    bind = getattr(session, "bind", None)
    return bind is not None and bind.dialect.name == "postgresql"


# --- API schemas ----------------------------------------------------------------------------------------------


class AccountPublic(BaseModel):
    id: UUID
    kind: AccountKind
    status: AccountStatus
    roles: list[str]
    scopes: list[str]
    display_name: str | None
    locale: str
    username: str | None = None
    phone: str | None = None  # masked: 138****5678
    wechat_openid: str | None = None  # masked
    totp_enabled: bool | None = None
    created_at: datetime


class AccountFilters(ListFilters):
    """The account list's filters (query parameters)."""

    kind: AccountKind | None = None
    status: AccountStatus | None = None
    role: Role | None = None


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    account: AccountPublic


class WechatLogin(BaseModel):
    code: str = PField(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The code from wx.login() (single use, 5 minutes)",
    )


class WechatPhone(BaseModel):
    code: str = PField(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description='The code from <button open-type="getPhoneNumber">',
    )


class PhonePublic(BaseModel):
    phone: str
    verified_at: datetime


class RefreshRequest(BaseModel):
    refresh_token: str = PField(min_length=20, max_length=200)


class LocaleUpdate(BaseModel):
    locale: Locale = PField(description="The language messages to you are written in: zh-CN (default) or en")


class LogoutRequest(BaseModel):
    refresh_token: str | None = PField(default=None, min_length=20, max_length=200)
    everywhere: bool = False


class StaffLogin(BaseModel):
    username: str = PField(min_length=1, max_length=50)
    password: str = PField(min_length=1, max_length=200)
    totp: str | None = PField(default=None, pattern=r"^[0-9]{6}$")


class PasswordChange(BaseModel):
    username: str = PField(min_length=1, max_length=50)
    current_password: str = PField(min_length=1, max_length=200)
    new_password: str = PField(min_length=1, max_length=200)
    totp: str | None = PField(default=None, pattern=r"^[0-9]{6}$")


class TotpSetup(BaseModel):
    username: str = PField(min_length=1, max_length=50)
    password: str = PField(min_length=1, max_length=200)


class TotpConfirm(TotpSetup):
    code: str = PField(pattern=r"^[0-9]{6}$")


class TotpProvisioning(BaseModel):
    secret: str
    otpauth_uri: str


def _check_access(roles: list[str], scopes: list[str]) -> None:
    import re

    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
    for scope in scopes:
        if not re.fullmatch(SCOPE_PATTERN, scope):  # match() would let "$" accept a trailing newline
            raise ValueError(f"scope {scope!r} is not *, pii:reveal or <kind>:<value>")


class AccessUpdate(BaseModel):
    roles: list[Annotated[str, text(20)]] = PField(max_length=6)
    scopes: list[Annotated[str, text(90)]] = PField(default_factory=list, max_length=50)  # SCOPE_PATTERN's longest
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("scopes")
    @classmethod
    def _valid(cls, scopes: list[str]) -> list[str]:
        _check_access([], scopes)
        return sorted(set(scopes))

    @field_validator("roles")
    @classmethod
    def _valid_roles(cls, roles: list[str]) -> list[str]:
        _check_access(roles, [])
        return sorted(set(roles))


class StaffCreate(AccessUpdate):
    username: str = PField(pattern=USERNAME_PATTERN)
    display_name: str | None = PField(default=None, max_length=100)
    reason: str = PField(default="new staff account", min_length=1, max_length=500)


class StaffCreated(BaseModel):
    account: AccountPublic
    temporary_password: str


class StatusChange(BaseModel):
    reason: str = PField(min_length=1, max_length=500)


class PasswordReset(BaseModel):
    temporary_password: str


class GrantPublic(BaseModel):
    id: UUID
    account_id: UUID
    actor: str
    action: str
    roles: list[str]
    scopes: list[str]
    reason: str
    at: datetime
