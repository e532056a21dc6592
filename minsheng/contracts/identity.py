"""Events the identity service publishes: one topic, ``identity.account``, keyed by the account id.

An account id is the person's principal: the JWT ``sub`` every service sees. The topic carries personal
information (a WeChat openid, a verified phone): only notify (to reach people) and visits (the verified phone,
kept sealed, to link a resident by keyed hash once the grid worker confirms) read the contact fields; grant
the topic's read ACL accordingly.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from minsheng.contracts.base import IntegrationEvent, contract, example

AccountKind = Literal["wechat", "staff"]
AccountStatus = Literal["active", "disabled"]
Locale = Literal["zh-CN", "en"]
LinkedRecord = Literal["visits.resident", "points.rider", "canteen.diner", "canteen.family"]

_ACCOUNT = "01936f2e-1d00-7000-8000-000000000001"


class AccountFact(IntegrationEvent):
    topic: ClassVar[str] = "identity.account"
    key_field: ClassVar[str] = "account_id"

    account_id: UUID
    occurred_at: datetime


@contract
class AccountCreated(AccountFact):
    """A person has an account: first WeChat login, or staff created by an admin."""

    event_type: ClassVar[str] = "minsheng.identity.account.created.v1"
    model_config = example(
        account_id=_ACCOUNT,
        occurred_at="2026-12-06T09:30:00Z",
        kind="wechat",
        roles=["resident"],
        scopes=[],
        display_name=None,
        locale="zh-CN",
    )

    kind: AccountKind
    roles: list[str]
    scopes: list[str] = []
    display_name: str | None = Field(default=None, max_length=100)
    locale: Locale = "zh-CN"


@contract
class AccountAccessChanged(AccountFact):
    """An account's roles or scopes were granted or withdrawn (the whole new set, not a diff)."""

    event_type: ClassVar[str] = "minsheng.identity.account.access_changed.v1"
    model_config = example(
        account_id=_ACCOUNT,
        occurred_at="2026-12-06T09:31:00Z",
        roles=["resident", "rider"],
        scopes=[],
        changed_by="01936f2e-1d00-7000-8000-0000000000ad",
        reason="joined the rider team",
    )

    roles: list[str]
    scopes: list[str] = []
    changed_by: str
    reason: str = Field(default="", max_length=500)


@contract
class AccountStatusChanged(AccountFact):
    """An account was disabled (its sessions die) or enabled again."""

    event_type: ClassVar[str] = "minsheng.identity.account.status_changed.v1"
    model_config = example(
        account_id=_ACCOUNT,
        occurred_at="2026-12-06T09:32:00Z",
        status="disabled",
        changed_by="01936f2e-1d00-7000-8000-0000000000ad",
        reason="left the district",
    )

    status: AccountStatus
    changed_by: str
    reason: str = Field(default="", max_length=500)


@contract
class AccountContactChanged(AccountFact):
    """How to reach the person changed: WeChat openid (mini-program), verified phone, preferred language.
    Personal information: ``phone`` is the WeChat-verified number (digits, with ``+86`` for mainland numbers
    omitted), ``None`` when removed."""

    event_type: ClassVar[str] = "minsheng.identity.account.contact_changed.v1"
    model_config = example(
        account_id=_ACCOUNT,
        occurred_at="2026-12-06T09:33:00Z",
        wechat_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        phone="13812345678",
        locale="zh-CN",
    )

    personal_data: ClassVar[frozenset[str]] = frozenset({"phone", "wechat_openid"})

    wechat_openid: str | None = Field(default=None, max_length=128)
    phone: str | None = Field(default=None, max_length=20)
    locale: Locale = "zh-CN"


@contract
class AccountLinked(AccountFact):
    """An account was linked to a record another service owns (a visits resident, a points rider, a canteen
    diner or a diner's family member) by identity itself (none yet: an admin's link, say). Links made where
    the records live are published there — visits' ``ResidentAccountLinked``, canteen's
    ``FamilyMemberLinked`` — because this topic has one writer, identity."""

    event_type: ClassVar[str] = "minsheng.identity.account.linked.v1"
    model_config = example(
        account_id=_ACCOUNT,
        occurred_at="2026-12-06T09:34:00Z",
        record="visits.resident",
        record_id="01936f2e-0000-7000-8000-0000000000aa",
        method="door_code",
    )

    record: LinkedRecord
    record_id: UUID
    method: Literal["door_code", "verified_phone", "same_principal", "admin"]
