"""The points service's data: its own registry and metadata (its own database)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel, field_validator, model_validator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.contracts.points import HazardCategory
from minsheng.platform.coords import Positioned
from minsheng.platform.fields import utc_now, utc_optional, uuid_pk
from minsheng.platform.inputs import PHOTO_URL_MAX_LENGTH, Instant, Latitude, Longitude, MonthText, text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.photos import PhotoFields
from minsheng.platform.privacy import MaskedPhone
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime

COMMUNITY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,49}$"
# Codes in queries, paths and lists as long as their columns: a longer one is a 422, never a database error.
CommunityCode = Annotated[str, text(50)]
TypeCode = Annotated[str, text(40)]  # task types, merchant categories, credential key ids


class PointsModel(SQLModel, registry=registry()):
    pass


metadata = PointsModel.metadata
platform_tables = install_platform_tables(metadata)


def _aware(value: datetime | None) -> datetime | None:
    """Times from clients must carry a zone (``Z`` or ``+08:00``): a naive time is ambiguous."""
    if value is not None and value.tzinfo is None:
        raise ValueError("a time must include its zone, e.g. 2026-11-27T12:00:00+08:00")
    return value


# --- teams ----------------------------------------------------------------------------------------------------


class TeamBase(SQLModel):
    name: str = Field(min_length=1, max_length=80)
    community: str | None = Field(default=None, max_length=50, schema_extra={"pattern": COMMUNITY_PATTERN})


class TeamCreate(TeamBase):
    leader_rider_id: UUID | None = Field(default=None, description="A red rider who leads the team")


class TeamUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    community: str | None = Field(default=None, max_length=50, schema_extra={"pattern": COMMUNITY_PATTERN})
    leader_rider_id: UUID | None = None


class Team(TeamBase, PointsModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (
        sa.UniqueConstraint("name", name="uq_teams_name"),
        sa.Index("ix_teams_community_created", "community", "created_at"),
    )
    id: UUID = uuid_pk()
    leader_rider_id: UUID | None = Field(default=None)  # no FK: riders point at teams, not the other way
    created_at: datetime = utc_now()


class TeamPublic(TeamBase):
    id: UUID
    leader_rider_id: UUID | None
    created_at: datetime
    members: int | None = None


# --- riders ---------------------------------------------------------------------------------------------------


class RiderRole(StrEnum):
    red = "red"  # party members and activists who lead teams
    blue = "blue"  # couriers (configurable: the source does not define it)
    yellow = "yellow"  # ordinary delivery riders


class RiderStatus(StrEnum):
    pending = "pending"  # registered, waiting for staff verification
    active = "active"
    suspended = "suspended"


class RiderBase(SQLModel):
    name: str = Field(min_length=1, max_length=50)
    platform: str = Field(max_length=50, description="Delivery platform, e.g. meituan, eleme, sf-express")
    community: str | None = Field(
        default=None,
        max_length=50,
        schema_extra={"pattern": COMMUNITY_PATTERN},
        description="Community slug, e.g. yunxing, gangcheng",
    )


class RiderCreate(RiderBase):
    phone: str = Field(schema_extra={"pattern": r"^\+?\d{7,15}$"})


class RiderSelfUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    platform: str | None = Field(default=None, max_length=50)
    phone: str | None = Field(default=None, schema_extra={"pattern": r"^\+?\d{7,15}$"})


class RiderStaffUpdate(SQLModel):
    role: RiderRole | None = None
    team_id: UUID | None = None
    leave_team: bool = Field(default=False, description="Remove the rider from their team")
    community: str | None = Field(default=None, max_length=50, schema_extra={"pattern": COMMUNITY_PATTERN})


class Reason(SQLModel):
    reason: str = Field(min_length=1, max_length=500)


class Rider(RiderBase, PointsModel, table=True):
    __tablename__ = "riders"
    __table_args__ = (
        sa.Index("ix_riders_community_created", "community", "created_at"),
        sa.Index("ix_riders_team", "team_id"),
        sa.Index("ix_riders_flagged", "flagged", "created_at"),
    )
    id: UUID = uuid_pk()
    subject: str = Field(max_length=200, unique=True, description="The identity-provider subject (JWT sub)")
    phone: str = Field(max_length=20)  # masked only
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)  # AES-GCM + AAD
    phone_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    role: str = Field(default=RiderRole.yellow, sa_type=sa.String(10))
    status: str = Field(default=RiderStatus.pending, sa_type=sa.String(12))
    status_reason: str | None = Field(default=None, max_length=500)
    team_id: UUID | None = Field(default=None, foreign_key="teams.id")
    verified_at: datetime | None = utc_optional()
    verified_by: str | None = Field(default=None, max_length=200)
    flagged: bool = False
    flag_reason: str | None = Field(default=None, max_length=500)
    false_reports: int = 0
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class RiderPublic(RiderBase):
    id: UUID
    role: RiderRole
    status: RiderStatus
    phone: MaskedPhone
    team_id: UUID | None = None
    created_at: datetime


class RiderStaffView(RiderPublic):
    """What staff see: the rider plus verification and abuse signals (phone still masked)."""

    status_reason: str | None
    verified_at: datetime | None
    verified_by: str | None
    flagged: bool
    flag_reason: str | None
    false_reports: int


class RiderFilters(ListFilters):
    community: CommunityCode | None = None
    status: RiderStatus | None = None
    role: RiderRole | None = None
    team_id: UUID | None = None
    flagged: bool | None = None


# --- hazard reports -------------------------------------------------------------------------------------------


class HazardStatus(StrEnum):
    submitted = "submitted"  # recorded, forwarded to the issues service
    accepted = "accepted"  # the issues service opened an issue for it
    verified = "verified"  # staff confirmed it on site: points earned
    resolved = "resolved"
    rejected = "rejected"


class HazardReportBase(SQLModel):
    category: HazardCategory = Field(sa_type=sa.String(20))
    description: str = Field(min_length=1, max_length=2000)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    address: str | None = Field(default=None, max_length=300)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)


class HazardReportCreate(HazardReportBase, Positioned):
    photo_ids: list[UUID] = Field(default_factory=list, max_length=9, description="From POST /points/photos")
    photo_urls: list[Annotated[str, text(PHOTO_URL_MAX_LENGTH)]] = Field(
        default_factory=list, max_length=9, description="Not accepted any more (422): upload, then send photo_ids"
    )


class HazardReport(HazardReportBase, PointsModel, table=True):
    __tablename__ = "hazard_reports"
    __table_args__ = (
        sa.Index("ix_hazard_reports_rider_created", "rider_id", "created_at"),
        sa.Index("ix_hazard_reports_category_created", "category", "created_at"),
        sa.Index("ix_hazard_reports_community_created", "community", "created_at"),
    )
    id: UUID = uuid_pk()
    rider_id: UUID = Field(foreign_key="riders.id")
    urgent: bool = False
    photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    status: str = Field(default=HazardStatus.submitted, sa_type=sa.String(12))
    issue_id: UUID | None = None
    issue_status: str | None = Field(default=None, max_length=30)
    duplicate_of: UUID | None = None
    false_report: bool = False
    progress: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    points_awarded: int = 0
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class ProgressStep(BaseModel):
    status: str
    at: datetime
    note: str | None = None


class HazardReportPublic(HazardReportBase):
    id: UUID
    rider_id: UUID
    urgent: bool
    photo_urls: list[str]
    status: HazardStatus
    issue_id: UUID | None
    issue_status: str | None
    duplicate_of: UUID | None = None
    progress: list[ProgressStep] = []
    points_awarded: int
    created_at: datetime
    updated_at: datetime


class HazardReportFilters(ListFilters):
    status: HazardStatus | None = None
    community: CommunityCode | None = None
    category: Annotated[str | None, text(20)] = None


# --- governance tasks (骑士参与治理事项清单) ----------------------------------------------------------------------


class Verification(StrEnum):
    auto = "auto"  # completion with the required proof is verified at once
    staff = "staff"  # staff check the proof and verify or reject


class TaskTypeBase(SQLModel):
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=1000)
    points: int = Field(ge=0, le=1000)
    daily_cap: int = Field(
        default=0, ge=0, le=100, description="Completions per rider per local day that earn points (0 = no cap)"
    )
    verification: Verification = Field(default=Verification.staff, sa_type=sa.String(10))
    proof_required: bool = Field(default=True, description="Completion must carry a photo or a note")


class TaskTypeCreate(TaskTypeBase):
    code: str = Field(schema_extra={"pattern": r"^[a-z][a-z0-9_]{1,39}$"})


class TaskTypeUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    description: str | None = Field(default=None, max_length=1000)
    points: int | None = Field(default=None, ge=0, le=1000)
    daily_cap: int | None = Field(default=None, ge=0, le=100)
    verification: Verification | None = None
    proof_required: bool | None = None
    active: bool | None = None


class TaskType(TaskTypeBase, PointsModel, table=True):
    __tablename__ = "task_types"
    code: str = Field(primary_key=True, max_length=40)
    active: bool = True
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class TaskTypePublic(TaskTypeBase):
    code: str
    active: bool


class TaskStatus(StrEnum):
    open = "open"  # posted, waiting for a rider
    claimed = "claimed"  # a rider took it
    submitted = "submitted"  # done, proof sent, waiting for staff
    verified = "verified"  # done and verified: points posted
    rejected = "rejected"  # proof not accepted, closed
    withdrawn = "withdrawn"  # the requester cancelled it
    expired = "expired"  # nobody did it in time


class TaskCreate(SQLModel):
    type_code: str = Field(max_length=40)
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    community: str | None = Field(default=None, max_length=50, schema_extra={"pattern": COMMUNITY_PATTERN})
    compound: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=300, description="Shown only to the claiming rider")
    pickup_address: str | None = Field(default=None, max_length=300)
    due_at: Instant | None = None
    points: int | None = Field(default=None, ge=0, le=1000, description="Defaults to the task type's points")

    @field_validator("due_at")
    @classmethod
    def _due_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)


class TaskProof(SQLModel):
    photo_ids: list[UUID] = Field(default_factory=list, max_length=9, description="From POST /points/photos")
    photo_urls: list[Annotated[str, text(PHOTO_URL_MAX_LENGTH)]] = Field(
        default_factory=list, max_length=9, description="Not accepted any more (422): upload, then send photo_ids"
    )
    note: str | None = Field(default=None, max_length=1000)


class TaskReject(SQLModel):
    reason: str = Field(min_length=1, max_length=500)
    reopen: bool = Field(default=True, description="Put the task back on the list for another rider")


class Task(PointsModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.UniqueConstraint("origin_service", "origin_kind", "origin_id", name="uq_tasks_origin"),
        sa.Index("ix_tasks_status_created", "status", "created_at"),
        sa.Index("ix_tasks_community_status_created", "community", "status", "created_at"),
        sa.Index("ix_tasks_claimed_by_created", "claimed_by", "created_at"),
    )
    id: UUID = uuid_pk()
    type_code: str = Field(foreign_key="task_types.code", max_length=40)
    title: str = Field(max_length=120)
    description: str = Field(default="", max_length=2000)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=300)
    pickup_address: str | None = Field(default=None, max_length=300)
    points: int = 0
    status: str = Field(default=TaskStatus.open, sa_type=sa.String(12))
    origin_service: str | None = Field(default=None, max_length=30)
    origin_kind: str | None = Field(default=None, max_length=30)
    origin_id: str | None = Field(default=None, max_length=64)
    created_by: str | None = Field(default=None, max_length=200)
    due_at: datetime | None = utc_optional()
    claimed_by: UUID | None = Field(default=None, foreign_key="riders.id")
    claimed_at: datetime | None = utc_optional()
    submitted_at: datetime | None = utc_optional()
    proof_photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    proof_note: str | None = Field(default=None, max_length=1000)
    verified_at: datetime | None = utc_optional()
    verified_by: str | None = Field(default=None, max_length=200)
    closed_reason: str | None = Field(default=None, max_length=500)
    points_awarded: int = 0
    capped: bool = False
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class TaskPublic(SQLModel):
    id: UUID
    type_code: str
    title: str
    description: str
    community: str | None
    compound: str | None
    address: str | None = Field(description="Only for the rider who claimed it, and staff")
    pickup_address: str | None
    points: int
    status: TaskStatus
    origin_service: str | None
    origin_kind: str | None
    origin_id: str | None
    due_at: datetime | None
    claimed_by: UUID | None
    claimed_at: datetime | None
    submitted_at: datetime | None
    proof_photo_urls: list[str]
    proof_note: str | None
    verified_at: datetime | None
    closed_reason: str | None
    points_awarded: int
    capped: bool
    created_at: datetime
    updated_at: datetime


class TaskFilters(ListFilters):
    status: TaskStatus | None = None
    community: CommunityCode | None = None
    type_code: TypeCode | None = None
    mine: bool = False


class Photo(PhotoFields, PointsModel, table=True):
    """Photos riders upload for hazard reports and task proofs (the bytes are in the object store)."""

    __tablename__ = "points_photos"


# --- ledger ---------------------------------------------------------------------------------------------------


class EntryKind(StrEnum):
    earned = "earned"
    reversed = "reversed"
    redeemed = "redeemed"
    voided = "voided"
    expired = "expired"
    adjusted = "adjusted"


class LedgerEntry(PointsModel, table=True):
    """Append-only. ``(cause_type, cause_id, kind)`` is unique: posting for the same cause twice is a no-op."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.UniqueConstraint("cause_type", "cause_id", "kind", name="uq_ledger_cause"),
        sa.Index("ix_ledger_rider_created", "rider_id", "created_at"),
        sa.Index("ix_ledger_kind_created", "kind", "created_at"),
    )
    id: UUID = uuid_pk()
    rider_id: UUID = Field(foreign_key="riders.id")
    kind: str = Field(sa_type=sa.String(10))
    amount: int  # signed: + earned/voided-back, - redeemed/reversed/expired
    balance_after: int
    cause_type: str = Field(max_length=30)
    cause_id: str = Field(max_length=64)
    event_id: str | None = Field(default=None, max_length=64, description="The event that caused it, if any")
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_now()


class LedgerEntryPublic(SQLModel):
    id: UUID
    kind: EntryKind
    amount: int
    balance_after: int
    cause_type: str = Field(description="hazard_report, task, redemption, expiry, adjustment")
    cause_id: str
    event_id: str | None = Field(default=None, description="The integration event that caused it, if any")
    note: str | None
    created_at: datetime


class LedgerEntryFilters(ListFilters):
    kind: EntryKind | None = None
    since: Instant | None = None
    until: Instant | None = None


class RiderBalance(PointsModel, table=True):
    """The running balance, updated in the same statement that checks it can never go negative."""

    __tablename__ = "rider_balances"
    __table_args__ = (sa.CheckConstraint("balance >= 0", name="ck_balance_never_negative"),)
    rider_id: UUID = Field(foreign_key="riders.id", primary_key=True)
    balance: int = 0
    updated_at: datetime = utc_now()


class BalancePublic(SQLModel):
    rider_id: UUID
    balance: int
    updated_at: datetime
    expiring_points: int = 0
    expiring_before: datetime | None = None
    earned_today: int = 0
    daily_cap: int = 0


class Adjustment(SQLModel):
    amount: int = Field(description="Signed points: positive credits, negative debits (never below zero)")
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("amount")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0 or abs(v) > 100_000:
            raise ValueError("amount must be non-zero and at most 100000 either way")
        return v


class LeaderboardRow(BaseModel):
    rank: int
    key: str
    name: str | None
    points: int
    riders: int


class Leaderboard(BaseModel):
    month: str
    by: str
    community: str | None = None
    team_id: UUID | None = None
    items: list[LeaderboardRow]
    you: LeaderboardRow | None = Field(
        default=None,
        description="A rider's own row (theirs, their team's or their community's) with its rank, also when it is"
        " below the rows listed; null for staff and for a rider not on this board",
    )


class LeaderboardFilters(ListFilters):
    month: MonthText | None = Field(default=None, description="YYYY-MM, local; default this month")
    community: CommunityCode | None = None
    team_id: UUID | None = None


# --- merchants (爱心商家联盟) ---------------------------------------------------------------------------------------


class MerchantStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class MerchantBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    category: str = Field(default="other", max_length=40, description="e.g. restaurant, barber, repair")
    community: str | None = Field(default=None, max_length=50, schema_extra={"pattern": COMMUNITY_PATTERN})
    address: str | None = Field(default=None, max_length=300)
    void_window_minutes: int = Field(default=30, ge=0, le=7 * 24 * 60)


class MerchantCreate(MerchantBase):
    contact_name: str | None = Field(default=None, max_length=50)
    contact_phone: str | None = Field(default=None, schema_extra={"pattern": r"^\+?\d{7,15}$"})


class MerchantUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    category: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)
    void_window_minutes: int | None = Field(default=None, ge=0, le=7 * 24 * 60)
    status: MerchantStatus | None = None


class Merchant(MerchantBase, PointsModel, table=True):
    __tablename__ = "merchants"
    __table_args__ = (sa.Index("ix_merchants_community_created", "community", "created_at"),)
    id: UUID = uuid_pk()
    contact_name: str | None = Field(default=None, max_length=50)
    contact_phone: str | None = Field(default=None, max_length=20)  # masked only
    contact_phone_enc: str | None = Field(default=None, sa_type=sa.Text)  # AES-GCM + AAD
    contact_phone_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    status: str = Field(default=MerchantStatus.active, sa_type=sa.String(12))
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class MerchantPublic(MerchantBase):
    id: UUID
    status: MerchantStatus
    contact_name: str | None = None
    contact_phone: MaskedPhone = None
    created_at: datetime


class MerchantCredential(PointsModel, table=True):
    """An API key: the id is public, the secret is stored encrypted (it is needed to check signatures)."""

    __tablename__ = "merchant_credentials"
    key_id: str = Field(primary_key=True, max_length=40)
    merchant_id: UUID = Field(foreign_key="merchants.id", index=True)
    secret_enc: str = Field(max_length=300)
    label: str | None = Field(default=None, max_length=80)
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_now()
    revoked_at: datetime | None = utc_optional()
    last_used_at: datetime | None = utc_optional()


class CredentialCreate(SQLModel):
    label: str | None = Field(default=None, max_length=80)


class CredentialPublic(SQLModel):
    key_id: str
    merchant_id: UUID
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CredentialIssued(CredentialPublic):
    secret: str = Field(description="Shown once: store it in the merchant's server, never in an app")


class MerchantNonce(PointsModel, table=True):
    """Nonces seen on signed requests. A nonce is never accepted twice; rows expire after the window."""

    __tablename__ = "merchant_nonces"
    __table_args__ = (sa.Index("ix_merchant_nonces_expires", "expires_at"),)
    key_id: str = Field(primary_key=True, max_length=40)
    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class OfferKind(StrEnum):
    goods = "goods"  # an item for N points
    discount = "discount"  # N points for X yuan off a service


class OfferBase(SQLModel):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=1000)
    kind: OfferKind = Field(sa_type=sa.String(10))
    points_cost: int = Field(ge=1, le=1_000_000)
    per_rider_limit: int | None = Field(
        default=None, ge=1, le=1000, description="Redemptions per rider over the offer's life"
    )
    valid_from: Instant | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: Instant | None = Field(default=None, sa_type=UTCDateTime)


class OfferCreate(OfferBase):
    discount_yuan: Decimal | None = Field(
        default=None, ge=0, le=100_000, decimal_places=2, description="For discount offers: yuan off"
    )
    stock: int | None = Field(default=None, ge=0, le=1_000_000, description="None = unlimited")

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _times_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @model_validator(mode="after")
    def _discount(self) -> OfferCreate:
        if self.kind == OfferKind.discount and not self.discount_yuan:
            raise ValueError("a discount offer needs discount_yuan")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class OfferUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=1000)
    points_cost: int | None = Field(default=None, ge=1, le=1_000_000)
    per_rider_limit: int | None = Field(default=None, ge=1, le=1000)
    add_stock: int | None = Field(
        default=None, ge=-1_000_000, le=1_000_000, description="Add (or remove) stock; stock never goes below zero"
    )
    valid_until: Instant | None = None
    active: bool | None = None

    @field_validator("valid_until")
    @classmethod
    def _until_aware(cls, v: datetime | None) -> datetime | None:
        return _aware(v)


class Offer(OfferBase, PointsModel, table=True):
    __tablename__ = "offers"
    __table_args__ = (
        sa.CheckConstraint("stock_remaining IS NULL OR stock_remaining >= 0", name="ck_offer_stock"),
        sa.Index("ix_offers_merchant_created", "merchant_id", "created_at"),
        sa.Index("ix_offers_active_created", "active", "created_at"),
    )
    id: UUID = uuid_pk()
    merchant_id: UUID = Field(foreign_key="merchants.id")
    discount_fen: int | None = None
    stock_total: int | None = None
    stock_remaining: int | None = None
    active: bool = True
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class OfferPublic(OfferBase):
    id: UUID
    merchant_id: UUID
    merchant_name: str | None = None
    discount_yuan: Decimal | None = None
    stock_total: int | None
    stock_remaining: int | None
    active: bool
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _yuan(cls, data: Any) -> Any:
        if isinstance(data, Offer):
            values = {name: getattr(data, name) for name in Offer.model_fields}
            fen = data.discount_fen
            values["discount_yuan"] = (Decimal(fen) / 100).quantize(Decimal("0.01")) if fen is not None else None
            return values
        return data


class OfferFilters(ListFilters):
    merchant_id: UUID | None = None
    community: CommunityCode | None = None
    kind: OfferKind | None = None
    max_points: int | None = None


# --- redemption -------------------------------------------------------------------------------------------------


class RedemptionCode(PointsModel, table=True):
    """A short-lived, one-time code the rider shows at the counter (only its hash is stored)."""

    __tablename__ = "redemption_codes"
    __table_args__ = (
        sa.Index("ix_redemption_codes_rider_expires", "rider_id", "expires_at"),
        sa.Index("ix_redemption_codes_expires", "expires_at"),
    )
    id: UUID = uuid_pk()
    code_hash: str = Field(max_length=64, unique=True)
    rider_id: UUID = Field(foreign_key="riders.id")
    offer_id: UUID | None = None
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = utc_optional()
    created_at: datetime = utc_now()


class CodeRequest(SQLModel):
    offer_id: UUID | None = Field(default=None, description="Optionally bind the code to one offer")


class CodeIssued(BaseModel):
    code: str
    qr_payload: str
    offer_id: UUID | None
    expires_at: datetime
    balance: int


class RedemptionStatus(StrEnum):
    completed = "completed"
    voided = "voided"


class RedeemRequest(BaseModel):
    code: str = Field(min_length=6, max_length=40, description="The digits the rider shows, or the QR payload")
    offer_id: UUID
    quantity: int = Field(default=1, ge=1, le=20)


class VoidRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class Redemption(PointsModel, table=True):
    __tablename__ = "redemptions"
    __table_args__ = (
        sa.Index("ix_redemptions_merchant_created", "merchant_id", "created_at"),
        sa.Index("ix_redemptions_rider_created", "rider_id", "created_at"),
        sa.Index("ix_redemptions_offer_rider", "offer_id", "rider_id"),
    )
    id: UUID = uuid_pk()
    merchant_id: UUID = Field(foreign_key="merchants.id")
    offer_id: UUID = Field(foreign_key="offers.id")
    rider_id: UUID = Field(foreign_key="riders.id")
    quantity: int = 1
    points: int
    discount_fen: int | None = None
    status: str = Field(default=RedemptionStatus.completed, sa_type=sa.String(10))
    created_at: datetime = utc_now()
    voided_at: datetime | None = utc_optional()
    void_reason: str | None = Field(default=None, max_length=500)


class RedemptionPublic(BaseModel):
    """What a merchant sees: never the rider's name or phone, only a per-merchant pseudonym."""

    id: UUID
    offer_id: UUID
    offer_title: str | None = None
    quantity: int
    points: int
    discount_yuan: Decimal | None = None
    status: RedemptionStatus
    rider_ref: str
    created_at: datetime
    void_until: datetime | None = None
    voided_at: datetime | None = None
    void_reason: str | None = None


class StaffRedemptionView(RedemptionPublic):
    """Staff (in the merchant's scope) may see which rider it was, e.g. to settle a dispute."""

    rider_id: UUID


class RiderRedemptionPublic(BaseModel):
    id: UUID
    merchant_id: UUID
    merchant_name: str | None
    offer_id: UUID
    offer_title: str | None
    quantity: int
    points: int
    discount_yuan: Decimal | None
    status: RedemptionStatus
    created_at: datetime
    voided_at: datetime | None


class RedemptionFilters(ListFilters):
    status: RedemptionStatus | None = None
    since: Instant | None = None
    until: Instant | None = None


class StatementSummary(BaseModel):
    merchant_id: UUID
    month: str
    redemptions: int
    voided: int
    points: int
    discount_yuan: Decimal
    by_offer: list[dict[str, Any]]


class ExpiryWarning(PointsModel, table=True):
    """A rider was told their points are about to expire (``PointsExpiring``): once per rider and local month
    (the unique key decides, also between replicas)."""

    __tablename__ = "expiry_warnings"
    __table_args__ = (sa.UniqueConstraint("rider_id", "period", name="uq_expiry_warning"),)
    id: UUID = uuid_pk()
    rider_id: UUID
    period: str = Field(max_length=7)  # local month, 2026-12
    points: int
    expiring_before: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = utc_now()
