"""The points service's data: its own registry and metadata (its own database)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import field_validator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.contracts.points import HazardCategory
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.privacy import mask_phone
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime


class PointsModel(SQLModel, registry=registry()):
    pass


metadata = PointsModel.metadata
platform_tables = install_platform_tables(metadata)


def _id() -> UUID:
    return uuid7()


def _time() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- riders -------------------------------------------------------------------------------------------------

class RiderRole(StrEnum):
    red = "red"
    blue = "blue"
    yellow = "yellow"


class RiderStatus(StrEnum):
    pending = "pending"
    active = "active"
    suspended = "suspended"


class RiderBase(SQLModel):
    name: str = Field(min_length=1, max_length=50)
    platform: str = Field(max_length=50, description="Delivery platform, e.g. meituan, eleme, sf-express")
    community: str | None = Field(default=None, max_length=50)


class RiderCreate(RiderBase):
    phone: str = Field(regex=r"^\+?\d{7,15}$")


class Rider(RiderBase, PointsModel, table=True):
    __tablename__ = "riders"
    id: UUID = Field(default_factory=_id, primary_key=True)
    subject: str = Field(max_length=200, unique=True, description="The identity-provider subject (JWT sub)")
    phone: str = Field(max_length=20)
    role: str = Field(default=RiderRole.yellow, sa_type=sa.String(10))
    status: str = Field(default=RiderStatus.pending, sa_type=sa.String(12))
    created_at: datetime = _time()


class RiderPublic(RiderBase):
    id: UUID
    role: RiderRole
    status: RiderStatus
    phone: str | None
    created_at: datetime

    @field_validator("phone")
    @classmethod
    def _mask(cls, v: str | None) -> str | None:
        return mask_phone(v)


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
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=300)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)


class HazardReportCreate(HazardReportBase):
    photo_urls: list[str] = Field(default_factory=list, max_length=9)


class HazardReport(HazardReportBase, PointsModel, table=True):
    __tablename__ = "hazard_reports"
    __table_args__ = (sa.Index("ix_hazard_reports_rider_created", "rider_id", "created_at"),)
    id: UUID = Field(default_factory=_id, primary_key=True)
    rider_id: UUID = Field(foreign_key="riders.id")
    urgent: bool = False
    photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    status: str = Field(default=HazardStatus.submitted, sa_type=sa.String(12))
    issue_id: UUID | None = None
    issue_status: str | None = Field(default=None, max_length=30)
    points_awarded: int = 0
    created_at: datetime = _time()
    updated_at: datetime = _time()


class HazardReportPublic(HazardReportBase):
    id: UUID
    rider_id: UUID
    urgent: bool
    photo_urls: list[str]
    status: HazardStatus
    issue_id: UUID | None
    issue_status: str | None
    points_awarded: int
    created_at: datetime
    updated_at: datetime


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
    )
    id: UUID = Field(default_factory=_id, primary_key=True)
    rider_id: UUID = Field(foreign_key="riders.id")
    kind: str = Field(sa_type=sa.String(10))
    amount: int  # signed: + earned/voided-back, - redeemed/reversed/expired
    balance_after: int
    cause_type: str = Field(max_length=30)
    cause_id: str = Field(max_length=64)
    event_id: str | None = Field(default=None, max_length=64, description="The event that caused it, if any")
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time()


class LedgerEntryPublic(SQLModel):
    id: UUID
    kind: EntryKind
    amount: int
    balance_after: int
    cause_type: str
    cause_id: str
    note: str | None
    created_at: datetime


class RiderBalance(PointsModel, table=True):
    """The running balance, updated in the same statement that checks it can never go negative."""

    __tablename__ = "rider_balances"
    __table_args__ = (sa.CheckConstraint("balance >= 0", name="ck_balance_never_negative"),)
    rider_id: UUID = Field(foreign_key="riders.id", primary_key=True)
    balance: int = 0
    updated_at: datetime = _time()


class BalancePublic(SQLModel):
    rider_id: UUID
    balance: int
    updated_at: datetime
