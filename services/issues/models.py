"""The issues service's data: its own registry and metadata (its own database).

Tables: the catalogue (departments, categories, matters not handled here, communities, reply templates),
issues with their reporters, assignments and timeline, uploaded photos, community votes with ballots, and
Open311 API keys.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import pydantic
import sqlalchemy as sa
from pydantic import BaseModel, field_validator, model_validator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.platform.coords import CoordSystem, CoordSystemQuery, Positioned, to_wgs84
from minsheng.platform.fields import uuid_pk
from minsheng.platform.ids import utcnow
from minsheng.platform.inputs import PHOTO_URL_MAX_LENGTH, Instant, Latitude, Longitude, text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.photos import PhotoFields
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime


class IssuesModel(SQLModel, registry=registry()):
    pass


metadata = IssuesModel.metadata
platform_tables = install_platform_tables(metadata)

CODE = r"^[a-z0-9][a-z0-9_\-]{0,39}$"
# Codes in queries, paths and lists as long as their columns: a longer one is a 422, never a database error.
CatalogueCode = Annotated[str, text(40)]  # category, department, matter, template, group
PlaceCode = Annotated[str, text(50)]  # community, compound


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
    assigned = "assigned"
    in_progress = "in_progress"
    reopened = "reopened"
    resolved = "resolved"  # awaiting the reporter's confirmation (auto-confirmed after N days)
    confirmed = "confirmed"
    rejected = "rejected"
    redirected = "redirected"  # not ours: the resident was told where to go
    closed_unresolved = "closed_unresolved"
    merged = "merged"  # a duplicate merged into another issue by staff


OPEN_STATUSES = frozenset(
    {IssueStatus.submitted, IssueStatus.accepted, IssueStatus.assigned, IssueStatus.in_progress, IssueStatus.reopened}
)
COMPLETED_STATUSES = frozenset({IssueStatus.resolved, IssueStatus.confirmed})


class AttributeType(StrEnum):
    string = "string"
    number = "number"
    datetime = "datetime"
    text = "text"
    singlevaluelist = "singlevaluelist"
    multivaluelist = "multivaluelist"


class AttributeValue(SQLModel):
    key: str = Field(min_length=1, max_length=60)
    name: str = Field(min_length=1, max_length=120)


class AttributeDef(SQLModel):
    """An extra question a category asks (Open311 service definition attribute)."""

    code: str = Field(min_length=1, max_length=40)
    datatype: AttributeType = AttributeType.string
    required: bool = False
    variable: bool = True  # False: informational only, shown to the user, no input
    description: str = Field(min_length=1, max_length=500)
    datatype_description: str | None = Field(default=None, max_length=300)
    order: int = Field(default=1, ge=1)
    values: list[AttributeValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lists_have_values(self) -> AttributeDef:
        is_list = self.datatype in (AttributeType.singlevaluelist, AttributeType.multivaluelist)
        if is_list and not self.values:
            raise ValueError(f"attribute {self.code}: a {self.datatype} needs values")
        return self


# --- catalogue ----------------------------------------------------------------------------------------------


class DepartmentBase(SQLModel):
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=40, description="The desk's public phone")
    duties: str | None = Field(default=None, max_length=1000, description="Who does what (posted publicly)")


class DepartmentCreate(DepartmentBase):
    code: str = Field(schema_extra={"pattern": CODE})


class DepartmentUpdate(SQLModel):
    name_zh: str | None = Field(default=None, min_length=1, max_length=100)
    name_en: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    duties: str | None = Field(default=None, max_length=1000)
    active: bool | None = None


class Department(DepartmentBase, IssuesModel, table=True):
    __tablename__ = "departments"
    code: str = Field(primary_key=True, max_length=40)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DepartmentPublic(DepartmentBase):
    code: str
    active: bool


class CategoryBase(SQLModel):
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    group: str = Field(default="general", max_length=40)
    description: str = Field(default="", max_length=2000)
    keywords: str = Field(default="", max_length=300, description="Comma-separated synonyms, for search")
    department: str = Field(max_length=40, description="Owning department code")
    first_response_minutes: int = Field(gt=0, le=60 * 24 * 30)
    resolution_hours: int = Field(gt=0, le=24 * 365)
    materials: list[Annotated[str, text(100)]] = Field(default_factory=list, sa_type=JSONType, max_length=30)
    attributes: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    urgent: bool = False
    emergency_guidance: str | None = Field(default=None, max_length=500, description='e.g. "Call 119 now"')
    dedupe: bool = Field(default=True, description="Nearby reports of this category are usually the same problem")
    service_notice: str | None = Field(default=None, max_length=500, description="What residents can expect")


class CategoryCreate(SQLModel):
    code: str = Field(schema_extra={"pattern": CODE})
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    group: str = Field(default="general", max_length=40)
    description: str = Field(default="", max_length=2000)
    keywords: str = Field(default="", max_length=300)
    department: str = Field(max_length=40)
    first_response_minutes: int = Field(gt=0, le=60 * 24 * 30)
    resolution_hours: int = Field(gt=0, le=24 * 365)
    materials: list[Annotated[str, text(100)]] = Field(default_factory=list, max_length=30)
    attributes: list[AttributeDef] = Field(default_factory=list, max_length=30)
    urgent: bool = False
    emergency_guidance: str | None = Field(default=None, max_length=500)
    dedupe: bool = True
    service_notice: str | None = Field(default=None, max_length=500)

    @field_validator("attributes")
    @classmethod
    def _unique_codes(cls, value: list[AttributeDef]) -> list[AttributeDef]:
        codes = [a.code for a in value]
        if len(codes) != len(set(codes)):
            raise ValueError("attribute codes must be unique")
        return value


class CategoryUpdate(SQLModel):
    name_zh: str | None = Field(default=None, min_length=1, max_length=100)
    name_en: str | None = Field(default=None, min_length=1, max_length=100)
    group: str | None = Field(default=None, max_length=40)
    description: str | None = Field(default=None, max_length=2000)
    keywords: str | None = Field(default=None, max_length=300)
    department: str | None = Field(default=None, max_length=40)
    first_response_minutes: int | None = Field(default=None, gt=0, le=60 * 24 * 30)
    resolution_hours: int | None = Field(default=None, gt=0, le=24 * 365)
    materials: list[Annotated[str, text(100)]] | None = Field(default=None, max_length=30)
    attributes: list[AttributeDef] | None = Field(default=None, max_length=30)
    urgent: bool | None = None
    emergency_guidance: str | None = Field(default=None, max_length=500)
    dedupe: bool | None = None
    service_notice: str | None = Field(default=None, max_length=500)
    active: bool | None = None


class Category(CategoryBase, IssuesModel, table=True):
    __tablename__ = "categories"
    code: str = Field(primary_key=True, max_length=40)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CategoryPublic(SQLModel):
    code: str
    name_zh: str
    name_en: str
    group: str
    description: str
    keywords: str
    department: str
    department_name_zh: str | None = None
    department_name_en: str | None = None
    first_response_minutes: int
    resolution_hours: int
    materials: list[str]
    attributes: list[AttributeDef]
    urgent: bool
    emergency_guidance: str | None
    dedupe: bool
    service_notice: str | None
    active: bool


class NotHandledBase(SQLModel):
    title_zh: str = Field(min_length=1, max_length=200)
    title_en: str = Field(min_length=1, max_length=200)
    kind: str = Field(default="certificate", max_length=20, description="certificate | matter")
    go_to_zh: str = Field(min_length=1, max_length=300, description="Where to go instead")
    go_to_en: str = Field(min_length=1, max_length=300)
    guidance: str | None = Field(default=None, max_length=1000)
    keywords: str = Field(default="", max_length=300)


class NotHandledCreate(NotHandledBase):
    code: str = Field(schema_extra={"pattern": CODE})


class NotHandledUpdate(SQLModel):
    title_zh: str | None = Field(default=None, min_length=1, max_length=200)
    title_en: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, max_length=20)
    go_to_zh: str | None = Field(default=None, min_length=1, max_length=300)
    go_to_en: str | None = Field(default=None, min_length=1, max_length=300)
    guidance: str | None = Field(default=None, max_length=1000)
    keywords: str | None = Field(default=None, max_length=300)
    active: bool | None = None


class NotHandledMatter(NotHandledBase, IssuesModel, table=True):
    """A matter the community does not handle (e.g. one of the 27 certificates it must not issue)."""

    __tablename__ = "not_handled"
    code: str = Field(primary_key=True, max_length=40)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NotHandledPublic(NotHandledBase):
    code: str
    active: bool


class CatalogueSearchResult(SQLModel):
    """``GET /catalogue/search``: the categories that match, and the matters not handled here that match."""

    categories: list[CategoryPublic]
    not_handled: list[NotHandledPublic]


class CommunityBase(SQLModel):
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    compounds: list[PlaceCode] = Field(default_factory=list, sa_type=JSONType, description="Compound codes")


class Community(CommunityBase, IssuesModel, table=True):
    __tablename__ = "communities"
    code: str = Field(primary_key=True, max_length=50)


class CommunityCreate(CommunityBase, Positioned):
    code: str = Field(schema_extra={"pattern": CODE})


class CommunityPublic(CommunityBase):
    code: str


class ReplyTemplateBase(SQLModel):
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(
        min_length=1,
        max_length=2000,
        description="Placeholders: {title} {category} {department} {due} {reporter_count}",
    )
    action: str | None = Field(default=None, max_length=30, description="The transition it is meant for")


class ReplyTemplateCreate(ReplyTemplateBase):
    code: str = Field(schema_extra={"pattern": CODE})


class ReplyTemplateUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    body: str | None = Field(default=None, min_length=1, max_length=2000)
    action: str | None = Field(default=None, max_length=30)
    active: bool | None = None


class ReplyTemplate(ReplyTemplateBase, IssuesModel, table=True):
    __tablename__ = "reply_templates"
    code: str = Field(primary_key=True, max_length=40)
    active: bool = True


class ReplyTemplatePublic(ReplyTemplateBase):
    code: str
    active: bool


# --- issues -------------------------------------------------------------------------------------------------


class IssueBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    category: str = Field(max_length=40)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    address: str | None = Field(default=None, max_length=300)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)


class Contact(SQLModel):
    """The resident a staff member reports for (phone/in person). Stored encrypted, shown masked."""

    name: str | None = Field(default=None, max_length=60)
    phone: str | None = Field(default=None, schema_extra={"pattern": r"^\+?[0-9 \-]{5,20}$"})


class IssueCreate(Positioned):
    category: str = Field(max_length=40)
    title: str | None = Field(default=None, min_length=1, max_length=200, description="Defaults to the category's name")
    description: str = Field(default="", max_length=4000)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    address: str | None = Field(default=None, max_length=300)
    community: str | None = Field(default=None, max_length=50)
    compound: str | None = Field(default=None, max_length=50)
    photo_ids: list[UUID] = Field(default_factory=list, max_length=9, description="From POST /photos")
    photo_urls: list[Annotated[str, text(PHOTO_URL_MAX_LENGTH)]] = Field(
        default_factory=list, max_length=9, description="Not accepted any more (422): upload, then send photo_ids"
    )
    is_public: bool = True
    attributes: dict[str, Any] = Field(default_factory=dict, description="Answers to the category's questions")
    channel: Literal["resident", "staff", "grid_worker", "patrol"] | None = Field(
        default=None, description="Defaults from your role; `patrol` for volunteer patrols"
    )
    intake: Literal["app", "phone", "in_person", "patrol"] | None = Field(
        default=None, description="How staff took the report"
    )
    contact: Contact | None = Field(default=None, description="Staff only: the resident reported for")

    @model_validator(mode="after")
    def _both_coordinates(self) -> IssueCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self


class Issue(IssueBase, IssuesModel, table=True):
    __tablename__ = "issues"
    __table_args__ = (
        # Intake from another service is idempotent on the origin: one issue per hazard report / need.
        sa.UniqueConstraint("origin_service", "origin_kind", "origin_id", name="uq_issue_origin"),
        # Lists sort newest first on (created_at, id); each filter has an index leading with it.
        sa.Index("ix_issues_created", "created_at", "id"),
        sa.Index("ix_issues_status_created", "status", "created_at", "id"),
        sa.Index("ix_issues_community_created", "community", "created_at", "id"),
        sa.Index("ix_issues_community_status_created", "community", "status", "created_at", "id"),
        sa.Index("ix_issues_compound_created", "compound", "created_at", "id"),
        sa.Index("ix_issues_category_created", "category", "created_at", "id"),
        sa.Index("ix_issues_reporter_created", "reporter", "created_at", "id"),
        sa.Index("ix_issues_lat_lng", "latitude", "longitude"),
        # Sweeps only look at what is still open and not yet flagged.
        sa.Index(
            "ix_issues_first_response_due",
            "first_response_due_at",
            postgresql_where=sa.text("first_responded_at IS NULL AND first_response_overdue_at IS NULL"),
            sqlite_where=sa.text("first_responded_at IS NULL AND first_response_overdue_at IS NULL"),
        ),
        sa.Index(
            "ix_issues_resolution_due",
            "resolution_due_at",
            postgresql_where=sa.text("closed_at IS NULL AND resolution_overdue_at IS NULL"),
            sqlite_where=sa.text("closed_at IS NULL AND resolution_overdue_at IS NULL"),
        ),
        sa.Index(
            "ix_issues_awaiting_confirmation",
            "resolved_at",
            postgresql_where=sa.text("status = 'resolved'"),
            sqlite_where=sa.text("status = 'resolved'"),
        ),
        sa.Index(
            "ix_issues_escalated",
            "escalation_level",
            "resolution_due_at",
            postgresql_where=sa.text("escalation_level > 0 AND closed_at IS NULL"),
            sqlite_where=sa.text("escalation_level > 0 AND closed_at IS NULL"),
        ),
    )
    id: UUID = uuid_pk()
    channel: str = Field(sa_type=sa.String(20))
    intake: str | None = Field(default=None, sa_type=sa.String(20))
    status: str = Field(default=IssueStatus.submitted, sa_type=sa.String(20))
    urgent: bool = False
    is_public: bool = True
    photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    reporter: str | None = Field(default=None, max_length=200, description="Subject of who reported it")
    reporter_count: int = 1
    contact_name: str | None = Field(default=None, max_length=300)  # encrypted
    contact_phone: str | None = Field(default=None, max_length=300)  # encrypted
    origin_service: str | None = Field(default=None, max_length=20)
    origin_kind: str | None = Field(default=None, max_length=30)
    origin_id: str | None = Field(default=None, max_length=64)
    linked: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    departments: list[str] = Field(default_factory=list, sa_type=JSONType)
    officer: str | None = Field(default=None, max_length=200)
    merged_into: UUID | None = Field(default=None)
    status_note: str | None = Field(default=None, max_length=2000, description="Latest public note")
    redirect_to: str | None = Field(default=None, max_length=300)
    rating: int | None = None
    reopen_count: int = 0
    escalation_level: int = 0
    open311_token: str | None = Field(default=None, max_length=40, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    first_response_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_response_overdue_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution_overdue_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IssueFilters(ListFilters):
    """The issue list's filters, read from the query string of ``GET /issues`` (the CSV export uses some)."""

    status: Annotated[list[IssueStatus] | None, pydantic.Field(description="Repeatable")] = None
    community: PlaceCode | None = None
    compound: PlaceCode | None = None
    category: CatalogueCode | None = None
    channel: Channel | None = None
    urgent: bool | None = None
    overdue: Annotated[bool | None, pydantic.Field(description="Open and past a deadline")] = None
    department: CatalogueCode | None = None
    mine: Annotated[bool, pydantic.Field(description="Only issues you reported or follow")] = False
    lat: Latitude | None = None
    lng: Longitude | None = None
    radius_m: Annotated[float, pydantic.Field(gt=0, le=20_000)] = 1000
    created_from: Instant | None = None
    created_to: Instant | None = None
    coord_system: CoordSystemQuery = None

    @property
    def near(self) -> tuple[float, float, float] | None:
        """The WGS-84 centre and radius of a search by position (``lat`` and ``lng`` given), else None."""
        if self.lat is None or self.lng is None:
            return None
        return (*to_wgs84(self.lat, self.lng, self.coord_system or CoordSystem.wgs84), self.radius_m)


# A plain pydantic model (not SQLModel), like the other answers built per row: a SQLModel runs its own
# ``__init__`` inside every validation, which makes a page of 50 issues ~3x slower to build.
class IssuePublic(BaseModel):
    title: str = pydantic.Field(min_length=1, max_length=200)  # IssueBase's fields (same schema)
    description: str = pydantic.Field(default="", max_length=4000)
    category: str = pydantic.Field(max_length=40)
    latitude: float | None = pydantic.Field(default=None, ge=-90, le=90)
    longitude: float | None = pydantic.Field(default=None, ge=-180, le=180)
    address: str | None = pydantic.Field(default=None, max_length=300)
    community: str | None = pydantic.Field(default=None, max_length=50)
    compound: str | None = pydantic.Field(default=None, max_length=50)
    id: UUID
    channel: Channel
    intake: str | None = None
    status: IssueStatus
    urgent: bool
    is_public: bool
    photo_urls: list[str]
    attributes: dict[str, Any] = {}
    reporter: str | None = None  # only for staff and the reporter
    reporter_count: int = 1
    contact_name: str | None = None  # masked, staff only
    contact_phone: str | None = None  # masked, staff only
    origin_service: str | None
    origin_kind: str | None
    origin_id: str | None
    linked: list[dict[str, str]] = []
    departments: list[str] = []
    officer: str | None = None
    merged_into: UUID | None = None
    status_note: str | None = None
    redirect_to: str | None = None
    rating: int | None = None
    reopen_count: int = 0
    escalation_level: int = 0
    overdue: bool = False
    created_at: datetime
    updated_at: datetime
    first_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    first_responded_at: datetime | None = None
    verified_at: datetime | None
    resolved_at: datetime | None
    confirmed_at: datetime | None = None
    closed_at: datetime | None = None


class ContactRevealed(SQLModel):
    """The resident's contact in clear (``GET /issues/{issue_id}/contact``; the read is on the timeline)."""

    name: str | None
    phone: str | None


class IssueReceipt(IssuePublic):
    """What a reporter gets back: the issue, whether the report joined an existing one, what to do now."""

    attached: bool = False
    emergency_guidance: str | None = None
    service_notice: str | None = None


class IssueReporter(IssuesModel, table=True):
    """Everyone credited for an issue (its first reporter, duplicate reporters, followers)."""

    __tablename__ = "issue_reporters"
    __table_args__ = (
        sa.UniqueConstraint("origin_service", "origin_kind", "origin_id", name="uq_reporter_origin"),
        sa.Index("ix_reporters_subject_issue", "subject", "issue_id"),
        sa.Index("ix_reporters_issue", "issue_id"),
    )
    id: UUID = uuid_pk()
    issue_id: UUID = Field(foreign_key="issues.id")
    subject: str = Field(max_length=200)
    role: str = Field(default="reporter", sa_type=sa.String(20))  # reporter | follower
    channel: str | None = Field(default=None, sa_type=sa.String(20))
    origin_service: str | None = Field(default=None, max_length=20)
    origin_kind: str | None = Field(default=None, max_length=30)
    origin_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IssueAssignment(IssuesModel, table=True):
    """Which departments handle an issue (several may co-handle); the department's list reads this."""

    __tablename__ = "issue_assignments"
    __table_args__ = (sa.Index("ix_assignments_department_issue", "department", "active", "issue_id"),)
    issue_id: UUID = Field(foreign_key="issues.id", primary_key=True)
    department: str = Field(primary_key=True, max_length=40)
    lead: bool = False
    active: bool = True
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TimelineEntry(IssuesModel, table=True):
    """Who did what to an issue, when, with what note. Append-only. Comments live here too."""

    __tablename__ = "issue_timeline"
    __table_args__ = (sa.Index("ix_timeline_issue_at", "issue_id", "at", "id"),)
    id: UUID = uuid_pk()
    issue_id: UUID = Field(foreign_key="issues.id")
    action: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=200)
    actor_role: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, max_length=4000)
    internal: bool = False  # staff-only note
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TimelineEntryPublic(BaseModel):  # plain pydantic, like IssuePublic
    id: UUID | None = None
    action: str
    actor: str | None
    actor_role: str | None = None
    note: str | None
    internal: bool = False
    data: dict[str, Any] = {}
    at: datetime


class IssueDetail(IssuePublic):
    timeline: list[TimelineEntryPublic]


class Photo(PhotoFields, IssuesModel, table=True):
    __tablename__ = "issue_photos"
    # Only photos from before the object store: moved out (and emptied) by photos.move_photos_out_of_the_database.
    data: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


# --- workflow request bodies --------------------------------------------------------------------------------


class StaffNote(SQLModel):
    note: str | None = Field(default=None, max_length=2000)
    template: str | None = Field(default=None, max_length=40, description="A reply template code")


class Rejection(StaffNote):
    reason: str | None = Field(default=None, min_length=1, max_length=2000)
    false_report: bool = Field(default=False, description="The report was found untrue (a rider earns nothing)")

    @model_validator(mode="after")
    def _reason_or_template(self) -> Rejection:
        if not self.reason and not self.template:
            raise ValueError("a reason (or a reply template) is required")
        return self


class Redirect(StaffNote):
    go_to: str | None = Field(default=None, min_length=1, max_length=300, description="Where to go instead")
    matter: str | None = Field(default=None, max_length=40, description="A not-handled matter code")

    @model_validator(mode="after")
    def _somewhere(self) -> Redirect:
        if not self.go_to and not self.matter:
            raise ValueError("say where to go (go_to) or name a not-handled matter")
        return self


class CloseUnresolved(StaffNote):
    reason: str = Field(min_length=1, max_length=2000)


class Assignment(StaffNote):
    departments: list[CatalogueCode] = Field(min_length=1, max_length=5, description="The first one leads")
    officer: str | None = Field(default=None, max_length=200)


class Resolution(StaffNote):
    photo_ids: list[UUID] = Field(default_factory=list, max_length=9)


class Confirmation(SQLModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class Reopening(SQLModel):
    reason: str = Field(min_length=1, max_length=2000)


class CommentCreate(SQLModel):
    body: str = Field(min_length=1, max_length=2000)
    internal: bool = Field(default=False, description="Staff only: a note residents do not see")


class MergeRequest(SQLModel):
    into: UUID = Field(description="The issue that stays")
    note: str | None = Field(default=None, max_length=2000)


class SplitRequest(SQLModel):
    subject: str | None = Field(default=None, max_length=200, description="The reporter to split off")
    origin_id: str | None = Field(default=None, max_length=64, description="Or the linked origin's id")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _which(self) -> SplitRequest:
        if not self.subject and not self.origin_id:
            raise ValueError("name the reporter (subject) or the linked origin (origin_id) to split off")
        return self


# --- votes --------------------------------------------------------------------------------------------------


class Eligibility(StrEnum):
    household = "household"
    resident = "resident"


class VoteCreate(SQLModel):
    community: str = Field(max_length=50)
    compound: str | None = Field(default=None, max_length=50)
    question: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=4000)
    options: list[Annotated[str, text(200)]] = Field(min_length=2, max_length=20)
    opens_at: Instant | None = None
    closes_at: Instant
    eligibility: Eligibility = Eligibility.household

    @field_validator("options")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if any(not v or len(v) > 200 for v in cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("options must be distinct, non-empty, at most 200 characters")
        return cleaned


class Vote(IssuesModel, table=True):
    __tablename__ = "votes"
    __table_args__ = (
        sa.Index("ix_votes_community_created", "community", "created_at", "id"),
        sa.Index("ix_votes_closes", "closes_at"),
    )
    id: UUID = uuid_pk()
    community: str = Field(max_length=50)
    compound: str | None = Field(default=None, max_length=50)
    question: str = Field(max_length=300)
    description: str = Field(default="", max_length=4000)
    options: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    eligibility: str = Field(sa_type=sa.String(20))
    opens_at: datetime = Field(sa_type=UTCDateTime)
    closes_at: datetime = Field(sa_type=UTCDateTime)
    closed_early_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When VoteOpened / VoteClosed were published (each once; a job catches up on scheduled opens and on
    # votes whose time ran out).
    open_announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Ballot(IssuesModel, table=True):
    """One per eligible voter (household or resident), enforced by the unique key. The voter is stored only
    as a keyed hash, and no endpoint lists ballots: the voter list is never public."""

    __tablename__ = "ballots"
    __table_args__ = (
        sa.UniqueConstraint("vote_id", "voter_hash", name="uq_ballot_voter"),
        sa.Index("ix_ballots_vote_option", "vote_id", "option"),
    )
    id: UUID = uuid_pk()
    vote_id: UUID = Field(foreign_key="votes.id")
    voter_hash: str = Field(max_length=64)
    option: str = Field(max_length=20)
    cast_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BallotCreate(SQLModel):
    option: str = Field(min_length=1, max_length=20, description="An option key from the vote")


class OptionResult(SQLModel):
    key: str
    label: str
    votes: int | None = None
    share: float | None = None


class VotePublic(SQLModel):
    id: UUID
    community: str
    compound: str | None
    question: str
    description: str
    options: list[OptionResult]
    eligibility: Eligibility
    opens_at: datetime
    closes_at: datetime
    status: Literal["scheduled", "open", "closed"]
    results_published: bool
    ballots_cast: int | None = None  # after close, or live for staff
    you_voted: bool | None = None
    your_choice: str | None = None
    created_at: datetime


class BallotRecorded(SQLModel):
    """``POST /votes/{vote_id}/ballots``: your ballot was recorded."""

    vote_id: UUID
    recorded: bool
    option: str


# --- Open311 API keys ---------------------------------------------------------------------------------------


class ApiKey(IssuesModel, table=True):
    __tablename__ = "open311_keys"
    id: UUID = uuid_pk()
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiKeyCreate(SQLModel):
    name: str = Field(min_length=1, max_length=100, description="Who the key is for (an app, a partner)")


class ApiKeyPublic(SQLModel):
    id: UUID
    name: str
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyIssued(ApiKeyPublic):
    api_key: str = Field(description="Shown once: store it now; only its hash is kept")
