"""The issues service's data: its own registry and metadata (its own database)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime


class IssuesModel(SQLModel, registry=registry()):
    pass


metadata = IssuesModel.metadata
platform_tables = install_platform_tables(metadata)


def _id() -> UUID:
    return uuid7()


class Channel(StrEnum):
    resident = "resident"
    staff = "staff"
    grid_worker = "grid_worker"
    rider = "rider"
    patrol = "patrol"
    open311 = "open311"


class IssueStatus(StrEnum):
    submitted = "submitted"
    accepted = "accepted"
    verified = "verified"
    resolved = "resolved"
    rejected = "rejected"


class IssueBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    category: str = Field(max_length=40)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=300)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)


class IssueCreate(IssueBase):
    photo_urls: list[str] = Field(default_factory=list, max_length=9)
    is_public: bool = True


class Issue(IssueBase, IssuesModel, table=True):
    __tablename__ = "issues"
    __table_args__ = (
        # Intake from another service is idempotent on the origin: one issue per hazard report / need.
        sa.UniqueConstraint("origin_service", "origin_kind", "origin_id", name="uq_issue_origin"),
        sa.Index("ix_issues_status_created", "status", "created_at", "id"),
        sa.Index("ix_issues_community_created", "community", "created_at", "id"),
        sa.Index("ix_issues_reporter_created", "reporter", "created_at", "id"),
    )
    id: UUID = Field(default_factory=_id, primary_key=True)
    channel: str = Field(sa_type=sa.String(20))
    status: str = Field(default=IssueStatus.submitted, sa_type=sa.String(20))
    urgent: bool = False
    is_public: bool = True
    photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    reporter: str | None = Field(default=None, max_length=200, description="Subject of who reported it")
    origin_service: str | None = Field(default=None, max_length=20)
    origin_kind: str | None = Field(default=None, max_length=30)
    origin_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IssuePublic(IssueBase):
    id: UUID
    channel: Channel
    status: IssueStatus
    urgent: bool
    is_public: bool
    photo_urls: list[str]
    origin_service: str | None
    origin_kind: str | None
    origin_id: str | None
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None
    resolved_at: datetime | None


class TimelineEntry(IssuesModel, table=True):
    """Who did what to an issue, when, with what note. Append-only."""

    __tablename__ = "issue_timeline"
    __table_args__ = (sa.Index("ix_timeline_issue_at", "issue_id", "at"),)
    id: UUID = Field(default_factory=_id, primary_key=True)
    issue_id: UUID = Field(foreign_key="issues.id")
    action: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TimelineEntryPublic(SQLModel):
    action: str
    actor: str | None
    note: str | None
    at: datetime


class IssueDetail(IssuePublic):
    timeline: list[TimelineEntryPublic]


class StaffNote(SQLModel):
    note: str | None = Field(default=None, max_length=2000)


class Rejection(SQLModel):
    reason: str = Field(min_length=1, max_length=2000)
    false_report: bool = Field(default=False, description="The report was found untrue (a rider earns nothing)")
