"""The notify service's data: who can be reached how (a read model of identity's account events), what they
accepted (WeChat one-time subscriptions, preferences), what was said (messages = the in-app inbox) and how
each message travels (one delivery per message and channel)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import pydantic
import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.platform.fields import json_list, utc_now, utc_optional, uuid_pk
from minsheng.platform.inputs import Instant, text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType


class NotifyModel(SQLModel, registry=registry()):
    pass


metadata = NotifyModel.metadata
platform_tables = install_platform_tables(metadata)


class Channel(StrEnum):
    inbox = "inbox"
    wechat = "wechat"
    sms = "sms"
    wecom = "wecom"


SENT_CHANNELS = (Channel.wechat, Channel.sms, Channel.wecom)  # the ones the sender loop sends


class DeliveryStatus(StrEnum):
    pending = "pending"  # due at next_attempt_at
    held = "held"  # waiting out quiet hours, a throttle or an unconfigured channel (due at next_attempt_at)
    sending = "sending"  # claimed by a sender until lease_until
    sent = "sent"  # the provider accepted it (inbox: stored)
    failed = "failed"  # permanent error (bad number, no subscription …): reason in last_error
    dead = "dead"  # retries exhausted; re-sendable from the CLI
    skipped = "skipped"  # not sent by choice: the recipient opted out of the channel


DUE_STATUSES = (DeliveryStatus.pending.value, DeliveryStatus.held.value)


# --- the recipient read model (from identity's account events) ---------------------------------------------


class Recipient(NotifyModel, table=True):
    """An account as notify knows it. ``account_id`` is the principal (JWT ``sub``). The openid and phone are
    encrypted at rest (FieldCipher); the masked phone is kept for staff views."""

    __tablename__ = "recipients"
    account_id: str = Field(primary_key=True, max_length=200)
    kind: str = Field(default="wechat", sa_type=sa.String(12))
    roles: list[str] = json_list()
    scopes: list[str] = json_list()
    status: str = Field(default="active", sa_type=sa.String(12))
    locale: str = Field(default="zh-CN", sa_type=sa.String(8))
    openid_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_masked: str | None = Field(default=None, max_length=20)
    updated_at: datetime = utc_now()


class RecordLink(NotifyModel, table=True):
    """identity's AccountLinked: an account stands for another service's record (a rider, a diner, …)."""

    __tablename__ = "record_links"
    __table_args__ = (sa.UniqueConstraint("record", "record_id", "account_id", name="uq_record_links"),)
    id: UUID = uuid_pk()
    record: str = Field(max_length=40)
    record_id: str = Field(max_length=64)
    account_id: str = Field(max_length=200, index=True)
    created_at: datetime = utc_now()


class PreferenceBase(SQLModel):
    channels_off: list[str] = Field(
        default_factory=list, sa_type=JSONType, description="Channels the person opted out of: wechat, sms"
    )
    rules_off: list[str] = Field(
        default_factory=list,
        sa_type=JSONType,
        description="Rule ids the person does not want (urgent rules cannot be muted)",
    )


class Preference(PreferenceBase, NotifyModel, table=True):
    __tablename__ = "preferences"
    account_id: str = Field(primary_key=True, max_length=200)
    updated_at: datetime = utc_now()


class PreferencePublic(PreferenceBase):
    pass


class Subscription(NotifyModel, table=True):
    """WeChat one-time subscriptions: each accept in ``wx.requestSubscribeMessage`` is one credit for one
    send of that template; a send spends it."""

    __tablename__ = "wechat_subscriptions"
    __table_args__ = (sa.UniqueConstraint("account_id", "template_id", name="uq_subscription"),)
    id: UUID = uuid_pk()
    account_id: str = Field(max_length=200)
    template_id: str = Field(max_length=128)
    credits: int = 0
    updated_at: datetime = utc_now()


class SubscriptionRecord(SQLModel):
    """What ``wx.requestSubscribeMessage`` answered, passed on as is: template id → accept|reject|ban|filter."""

    results: dict[Annotated[str, text(128)], Annotated[str, text(100)]] = Field(
        description='e.g. {"TEMPLATE_ID": "accept"} from the success callback', max_length=50
    )


class SubscriptionPublic(SQLModel):
    template_id: str
    credits: int


# --- messages (the inbox) and deliveries ---------------------------------------------------------------------


class Message(NotifyModel, table=True):
    """One rendered notification for one recipient about one event. For an account it is its inbox entry;
    a phone-only family member or a staff group has messages without an account."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "rule", "recipient_key", name="uq_message_cause"),
        sa.Index("ix_messages_inbox", "account_id", "id"),
        sa.Index("ix_messages_unread", "account_id", "read_at"),
    )
    id: UUID = uuid_pk()
    account_id: str | None = Field(default=None, max_length=200)
    recipient_key: str = Field(max_length=220)  # account:<sub> | phone:<member id> | wecom:<community>
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=160)
    rule: str = Field(max_length=60)
    urgent: bool = False
    title: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)
    link: str | None = Field(default=None, max_length=300)
    locale: str = Field(default="zh-CN", sa_type=sa.String(8))
    subject_ref: str | None = Field(default=None, max_length=100)  # e.g. issue:<id>
    created_at: datetime = utc_now()
    read_at: datetime | None = utc_optional()


class MessagePublic(SQLModel):
    id: UUID
    rule: str
    urgent: bool
    title: str
    body: str
    link: str | None
    subject_ref: str | None
    created_at: datetime
    read_at: datetime | None


class InboxPage(SQLModel):
    items: list[MessagePublic]
    next_cursor: str | None = None
    unread: int


class Delivery(NotifyModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "channel", name="uq_delivery_message_channel"),
        sa.Index("ix_deliveries_due", "status", "channel", "next_attempt_at"),
        sa.Index("ix_deliveries_recipient", "recipient_key", "id"),
    )
    id: UUID = uuid_pk()
    message_id: UUID = Field(foreign_key="messages.id")
    recipient_key: str = Field(max_length=220)
    channel: str = Field(sa_type=sa.String(10))
    status: str = Field(default=DeliveryStatus.pending, sa_type=sa.String(10))
    urgent: bool = False
    attempts: int = 0
    next_attempt_at: datetime = utc_now()
    lease_until: datetime | None = utc_optional()
    address_enc: str | None = Field(default=None, sa_type=sa.Text)  # openid / phone (encrypted) / robot scope
    address_masked: str | None = Field(default=None, max_length=40)
    request: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)  # template id, params (no address)
    error_class: str | None = Field(default=None, max_length=20)
    last_error: str | None = Field(default=None, max_length=300)
    provider_ref: str | None = Field(default=None, max_length=120)
    fallback_of: UUID | None = None
    created_at: datetime = utc_now()
    sent_at: datetime | None = utc_optional()
    updated_at: datetime = utc_now()


class DeliveryPublic(SQLModel):
    """Staff view: masked address, no message body."""

    id: UUID
    message_id: UUID
    recipient_key: str
    channel: str
    status: str
    urgent: bool
    attempts: int
    next_attempt_at: datetime
    address_masked: str | None
    error_class: str | None
    last_error: str | None
    provider_ref: str | None
    fallback_of: UUID | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryFilters(ListFilters):
    """The delivery log's filters (query parameters): each one given narrows the list."""

    status: DeliveryStatus | None = None
    channel: Annotated[str | None, text(10)] = None
    recipient: Annotated[str | None, text(220)] = pydantic.Field(
        default=None, description="recipient key, e.g. account:<sub>"
    )
    since: Instant | None = None


class CareContact(NotifyModel, table=True):
    """The family an absence alert reached, so the welfare-check outcome (which names only the alert) reaches
    the same people. Phones encrypted at rest; deleted with the retention of messages."""

    __tablename__ = "care_contacts"
    __table_args__ = (sa.UniqueConstraint("alert_id", "member_id", name="uq_care_contact"),)
    id: UUID = uuid_pk()
    alert_id: str = Field(max_length=64, index=True)
    member_id: str = Field(max_length=64)
    subject: str | None = Field(default=None, max_length=200)
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = utc_now()


class DigestItem(NotifyModel, table=True):
    """An event a ``digest`` rule queued for the staff's daily digest (an issue overdue, a need escalated), or
    a ``bill`` rule for a resident's monthly happiness bill (a need closed out), rendered into its line when
    consumed; the daily/monthly job gathers each group's or resident's lines into one message and marks them
    with it. Unique per event and rule, so a redelivered event is queued once."""

    __tablename__ = "digest_items"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "rule", name="uq_digest_item_cause"),
        sa.Index("ix_digest_items_open", "digest_message_id", "scope", "occurred_at"),
    )
    id: UUID = uuid_pk()
    event_id: str = Field(max_length=64)
    rule: str = Field(max_length=60)
    scope: str = Field(max_length=64)  # the duty group (a community with a robot, or "*"), or resident:<id>
    community: str | None = Field(default=None, max_length=40)
    line: str = Field(max_length=500)
    occurred_at: datetime = utc_now()
    digest_message_id: UUID | None = None
    created_at: datetime = utc_now()


class IssueFollower(NotifyModel, table=True):
    """issues' IssueFollowed: who hears an issue's progress besides its first reporter (further reporters,
    followers); moved along when the issue is merged into another."""

    __tablename__ = "issue_followers"
    __table_args__ = (sa.UniqueConstraint("issue_id", "subject", name="uq_issue_followers"),)
    id: UUID = uuid_pk()
    issue_id: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=200)
    role: str = Field(max_length=10)
    created_at: datetime = utc_now()


# --- the duty roster (who is on duty for urgent issues) -------------------------------------------------------


class DutyShiftBase(SQLModel):
    community: str = Field(
        max_length=40,
        schema_extra={"pattern": r"^(\*|[a-z0-9][a-z0-9-]{1,39})$"},
        description='The community code the person is on duty for; "*" = the whole district',
    )
    account_id: str = Field(min_length=1, max_length=200, description="The staff member's account (JWT sub)")
    name: str | None = Field(default=None, max_length=50)


class DutyShift(DutyShiftBase, NotifyModel, table=True):
    """A staff member on duty for a community (or the district, ``*``) from ``starts_at`` until ``ends_at``
    (open-ended when empty): an urgent issue there reaches them at once, day or night. Their phone is the
    verified one from identity's account events; ``phone_enc`` is one entered with the shift (encrypted at
    rest, masked in reads), used only when identity knows none."""

    __tablename__ = "duty_roster"
    __table_args__ = (sa.Index("ix_duty_roster_community", "community", "starts_at"),)
    id: UUID = uuid_pk()
    starts_at: datetime = utc_now()
    ends_at: datetime | None = utc_optional()
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_masked: str | None = Field(default=None, max_length=20)
    created_by: str = Field(max_length=200)
    created_at: datetime = utc_now()


class DutyShiftCreate(DutyShiftBase):
    starts_at: Instant | None = Field(default=None, description="From when (now when omitted)")
    ends_at: Instant | None = Field(default=None, description="Until when (open-ended when omitted)")
    phone: str | None = Field(
        default=None,
        schema_extra={"pattern": r"^(\+?86)?1[3-9]\d{9}$"},
        description="A mainland mobile number, used only when the account has no verified phone",
    )


class DutyShiftPublic(DutyShiftBase):
    """A roster entry as staff read it: the entered phone masked; whether the person is on duty now."""

    id: UUID
    starts_at: datetime
    ends_at: datetime | None
    phone_masked: str | None
    on_duty: bool = False
    created_by: str
    created_at: datetime
