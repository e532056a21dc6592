"""The visits service's data: its own registry and metadata (its own database).

Places (community → compound → building → household), people (residents, grid workers and their
assignments), the visiting policy and rounds, visit records and tasks, the needs ledger (问题台账) with its
history, and the audit trail of every reveal of personal data.

Every row that belongs to a place carries ``community``/``compound`` codes and ``building_id``: scope checks
and list filters never need a join.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import sqlalchemy as sa
from annotated_types import Interval
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.platform.coords import Positioned
from minsheng.platform.fields import utc_now, uuid_pk
from minsheng.platform.inputs import Day, Instant, Latitude, Longitude, text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.personal_data import PersonalData
from minsheng.platform.photos import PhotoFields
from minsheng.platform.privacy import MaskedPhone
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime


class VisitsModel(SQLModel, registry=registry()):
    pass


metadata = VisitsModel.metadata
platform_tables = install_platform_tables(metadata)

CODE = r"^[a-z0-9][a-z0-9-]{1,39}$"
PHONE = r"^\+?\d{7,15}$"
# What a list is filtered by: a community, compound, tier or category code.
CodeFilter = Annotated[str, text(40)] | None


# --- enums --------------------------------------------------------------------------------------------------


class CompoundKind(StrEnum):
    commercial = "commercial"
    affordable_housing = "affordable_housing"  # 保障房
    resettlement = "resettlement"  # 安置房
    work_unit = "work_unit"  # 单位宿舍
    old_quarter = "old_quarter"  # 老旧小区


class CareTag(StrEnum):
    living_alone = "living_alone"  # 独居
    disabled = "disabled"  # 残疾
    dibao = "dibao"  # 低保 minimum living allowance
    tekun = "tekun"  # 特困 extreme hardship
    empty_nest = "empty_nest"  # 空巢
    veteran = "veteran"  # 退役军人/优抚对象


class Mobility(StrEnum):
    independent = "independent"
    limited = "limited"  # walks with difficulty
    needs_aid = "needs_aid"  # stick, walker
    wheelchair = "wheelchair"
    bedridden = "bedridden"


class ResidentStatus(StrEnum):
    active = "active"
    moved = "moved"
    deceased = "deceased"


class Outcome(StrEnum):
    visited = "visited"
    not_home = "not_home"
    refused = "refused"


class Attention(StrEnum):
    unreachable = "unreachable"  # nobody home on max_not_home_attempts tries in a row
    refused = "refused"  # the household refused the last visit


class TaskKind(StrEnum):
    welfare_check = "welfare_check"
    follow_up = "follow_up"


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class Urgency(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class NeedStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"  # the owner says it is done; waiting for the resident's confirmation
    confirmed = "confirmed"  # the resident confirmed (逐一销号)
    closed = "closed"  # closed by a supervisor with a reason, or by the resolution of its issue
    escalated = "escalated"  # with the issues service


TERMINAL_NEED = frozenset({NeedStatus.confirmed, NeedStatus.closed})
OPEN_NEED = frozenset({NeedStatus.open, NeedStatus.in_progress, NeedStatus.resolved, NeedStatus.escalated})


# --- places -------------------------------------------------------------------------------------------------


class CommunityBase(SQLModel):
    code: str = Field(schema_extra={"pattern": CODE}, max_length=40, description="Slug used in scopes, e.g. `yunxing`")
    name: str = Field(min_length=1, max_length=60)


class CommunityCreate(CommunityBase):
    pass


class Community(CommunityBase, VisitsModel, table=True):
    __tablename__ = "communities"
    id: UUID = uuid_pk()
    code: str = Field(max_length=40, unique=True)
    created_at: datetime = utc_now()


class CommunityPublic(CommunityBase):
    id: UUID
    compounds: int = 0
    households: int = 0


class CompoundBase(SQLModel):
    code: str = Field(
        schema_extra={"pattern": CODE}, max_length=40, description="Slug used in scopes, e.g. `yuntaiyuan`"
    )
    name: str = Field(min_length=1, max_length=60)
    kind: CompoundKind = Field(default=CompoundKind.commercial, sa_type=sa.String(20))
    address: str | None = Field(default=None, max_length=200)
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class CompoundCreate(CompoundBase, Positioned):
    community: str = Field(max_length=40)


class Compound(CompoundBase, VisitsModel, table=True):
    __tablename__ = "compounds"
    __table_args__ = (sa.Index("ix_compounds_community_code", "community", "code"),)
    id: UUID = uuid_pk()
    code: str = Field(max_length=40, unique=True)
    community: str = Field(max_length=40)
    created_at: datetime = utc_now()


class CompoundPublic(CompoundBase):
    id: UUID
    community: str


class BuildingBase(SQLModel):
    name: str = Field(min_length=1, max_length=40, description="e.g. `3号楼`")
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class BuildingCreate(BuildingBase, Positioned):
    compound: str = Field(max_length=40)


class Building(BuildingBase, VisitsModel, table=True):
    __tablename__ = "buildings"
    __table_args__ = (sa.UniqueConstraint("compound", "name", name="uq_building_compound_name"),)
    id: UUID = uuid_pk()
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    created_at: datetime = utc_now()


class BuildingPublic(BuildingBase):
    id: UUID
    community: str
    compound: str


class HouseholdBase(SQLModel):
    unit: str | None = Field(default=None, max_length=20, description="单元, e.g. `2`")
    room: str = Field(min_length=1, max_length=20, description="室, e.g. `501`")
    note: str | None = Field(default=None, max_length=500)


class HouseholdCreate(HouseholdBase):
    building_id: UUID


class HouseholdUpdate(SQLModel):
    unit: str | None = Field(default=None, max_length=20)
    room: str | None = Field(default=None, min_length=1, max_length=20)
    note: str | None = Field(default=None, max_length=500)


class Household(HouseholdBase, VisitsModel, table=True):
    """A door. Its visiting tier and the date it is next due are kept current on every change that affects
    them (residents, policies, visits), so due lists are one indexed range scan."""

    __tablename__ = "households"
    __table_args__ = (
        sa.UniqueConstraint("building_id", "unit", "room", name="uq_household_door"),
        sa.Index("ix_households_compound_due", "compound", "next_due_on", "id"),
        sa.Index("ix_households_community_due", "community", "next_due_on", "id"),
        sa.Index("ix_households_building_due", "building_id", "next_due_on", "id"),
    )
    id: UUID = uuid_pk()
    building_id: UUID = Field(foreign_key="buildings.id")
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    address: str = Field(max_length=200, description="Readable label: compound, building, unit, room")
    tier: str = Field(default="standard", max_length=40)
    cadence_days: int = 90
    next_due_on: date | None = None  # None: vacant, nobody to visit
    last_visited_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_outcome: str | None = Field(default=None, sa_type=sa.String(12))
    failed_attempts: int = 0
    attention: str | None = Field(default=None, sa_type=sa.String(20))
    active_residents: int = 0
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class HouseholdPublic(HouseholdBase):
    id: UUID
    building_id: UUID
    community: str
    compound: str
    address: str
    tier: str
    cadence_days: int
    next_due_on: date | None
    overdue: bool = False
    last_visited_at: datetime | None
    last_attempt_at: datetime | None
    last_outcome: Outcome | None
    failed_attempts: int
    attention: Attention | None
    active_residents: int
    created_at: datetime


# --- residents ----------------------------------------------------------------------------------------------


class ResidentBase(SQLModel):
    name: str = Field(min_length=1, max_length=50)
    gender: str | None = Field(default=None, schema_extra={"pattern": r"^[FMX]$"}, max_length=1)
    birth_date: Day | None = Field(default=None, description="Taken from the ID number when omitted")
    care_tags: list[CareTag] = Field(default_factory=list, max_length=10)
    mobility: Mobility = Field(default=Mobility.independent, sa_type=sa.String(12))


class ResidentCreate(ResidentBase):
    household_id: UUID
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})
    id_number: Annotated[str, text(18)] | None = Field(
        default=None, description="居民身份证号 (18 characters, checked); stored encrypted, answered masked"
    )
    health_notes: str | None = Field(
        default=None,
        max_length=2000,
        description="Health and mobility notes; encrypted at rest, shown only through an audited reveal",
    )


class ResidentUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    gender: str | None = Field(default=None, schema_extra={"pattern": r"^[FMX]$"}, max_length=1)
    birth_date: Day | None = None
    care_tags: list[CareTag] | None = Field(default=None, max_length=10)
    mobility: Mobility | None = None
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})
    id_number: Annotated[str, text(18)] | None = None
    health_notes: str | None = Field(default=None, max_length=2000)
    account_subject: str | None = Field(
        default=None, max_length=200, description="Link the resident's app account (JWT sub)"
    )


class Resident(PersonalData, VisitsModel, table=True):
    __tablename__ = "residents"
    __table_args__ = (
        sa.Index("ix_residents_household", "household_id"),
        sa.Index("ix_residents_community_id", "community", "id"),
        sa.Index("ix_residents_compound_id", "compound", "id"),
        sa.Index("ix_residents_birth", "birth_date"),
    )
    id: UUID = uuid_pk()
    household_id: UUID = Field(foreign_key="households.id")
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID
    name: str = Field(max_length=50)
    gender: str | None = Field(default=None, max_length=1)
    birth_date: date | None = None
    # ",dibao,living_alone," — portable LIKE filtering on every backend; answered as a list.
    tags: str = Field(default=",", max_length=200)
    mobility: str = Field(default=Mobility.independent, sa_type=sa.String(12))
    id_number_hash: str | None = Field(default=None, max_length=64, unique=True)  # one person, one record
    status: str = Field(default=ResidentStatus.active, sa_type=sa.String(10))
    status_effective_date: date | None = None
    account_subject: str | None = Field(default=None, max_length=200, unique=True)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class ResidentPublic(SQLModel):
    """Phone and ID number masked; health notes never in clear (see the audited reveal)."""

    id: UUID
    household_id: UUID
    community: str
    compound: str
    name: str
    gender: str | None
    birth_date: date | None
    age: int | None
    care_tags: list[CareTag]
    mobility: Mobility
    phone: MaskedPhone
    id_number: str | None
    has_health_notes: bool
    status: ResidentStatus
    status_effective_date: date | None
    account_linked: bool
    created_at: datetime


class StatusChange(SQLModel):
    status: ResidentStatus
    effective_date: Day
    note: str | None = Field(default=None, max_length=500)


class RevealField(StrEnum):
    phone = "phone"
    id_number = "id_number"
    health_notes = "health_notes"


class RevealRequest(SQLModel):
    fields: list[RevealField] = Field(min_length=1, max_length=3)
    reason: str = Field(min_length=4, max_length=300, description="Why you need it; kept in the audit trail")


class RevealedResident(SQLModel):
    resident_id: UUID
    phone: str | None = None
    id_number: str | None = None
    health_notes: str | None = None
    audit_id: UUID


class IdNumberLookup(SQLModel):
    id_number: str = Field(min_length=15, max_length=18)


class DoorCodeLink(SQLModel):
    code: str = Field(min_length=4, max_length=80, description="The door code your grid worker showed you")


class DoorCodePublic(SQLModel):
    resident_id: UUID
    code: str
    expires_at: datetime


class PiiAudit(VisitsModel, table=True):
    """Every reveal of a resident's phone, ID number or health notes: who, whose, which fields, why, when."""

    __tablename__ = "pii_audit"
    __table_args__ = (
        sa.Index("ix_pii_audit_resident_at", "resident_id", "at"),
        sa.Index("ix_pii_audit_actor_at", "actor", "at"),
        sa.Index("ix_pii_audit_at", "at", "id"),
    )
    id: UUID = uuid_pk()
    actor: str = Field(max_length=200)
    actor_roles: list[str] = Field(default_factory=list, sa_type=JSONType)
    resident_id: UUID
    community: str = Field(max_length=40)
    action: str = Field(default="reveal", max_length=20)
    fields: list[str] = Field(default_factory=list, sa_type=JSONType)
    reason: str = Field(max_length=300)
    request_id: str | None = Field(default=None, max_length=64)
    at: datetime = utc_now()


class PiiAuditPublic(SQLModel):
    id: UUID
    actor: str
    actor_roles: list[str]
    resident_id: UUID
    community: str
    action: str
    fields: list[str]
    reason: str
    request_id: str | None
    at: datetime


# --- grid workers -------------------------------------------------------------------------------------------


class GridWorkerBase(SQLModel):
    name: str = Field(min_length=1, max_length=50)
    community: str = Field(max_length=40)


class GridWorkerCreate(GridWorkerBase):
    subject: str = Field(min_length=1, max_length=200, description="The identity-provider subject (JWT sub)")
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})


class GridWorker(GridWorkerBase, VisitsModel, table=True):
    __tablename__ = "grid_workers"
    __table_args__ = (sa.Index("ix_grid_workers_community", "community", "id"),)
    id: UUID = uuid_pk()
    subject: str = Field(max_length=200, unique=True)
    phone: str | None = Field(default=None, max_length=20)  # masked only
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)  # AES-GCM + AAD
    phone_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    active: bool = True
    left_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = utc_now()


class GridWorkerPublic(GridWorkerBase):
    id: UUID
    subject: str
    phone: MaskedPhone
    active: bool
    left_at: datetime | None
    created_at: datetime


class AssignmentCreate(SQLModel):
    compound: str = Field(max_length=40)
    building_id: UUID | None = Field(default=None, description="Only this building; the whole compound when omitted")


class GridAssignment(VisitsModel, table=True):
    __tablename__ = "grid_assignments"
    __table_args__ = (
        sa.Index("ix_assignments_worker_active", "worker_id", "ended_at"),
        sa.Index("ix_assignments_compound", "compound", "ended_at"),
    )
    id: UUID = uuid_pk()
    worker_id: UUID = Field(foreign_key="grid_workers.id")
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID | None = None
    started_at: datetime = utc_now()
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handed_over_to: UUID | None = None


class AssignmentPublic(SQLModel):
    id: UUID
    worker_id: UUID
    community: str
    compound: str
    building_id: UUID | None
    started_at: datetime
    ended_at: datetime | None
    handed_over_to: UUID | None


class Handover(SQLModel):
    to_worker_id: UUID
    reason: str | None = Field(default=None, max_length=300)


class HandoverResult(SQLModel):
    from_worker_id: UUID
    to_worker_id: UUID
    assignments: int
    needs: int
    tasks: int


# --- visiting policy and rounds -----------------------------------------------------------------------------


class PolicyBase(SQLModel):
    name: str = Field(min_length=1, max_length=60)
    cadence_days: int = Field(ge=1, le=366, description="Visit every N days")
    min_age: int | None = Field(default=None, ge=0, le=130, description="Applies to residents this old or older")
    all_tags: list[CareTag] = Field(
        default_factory=list, sa_type=JSONType, description="Applies to residents with all of these care tags"
    )
    retry_not_home_days: int = Field(default=2, ge=1, le=60, description="Nobody home: try again after N days")
    max_not_home_attempts: int = Field(
        default=3, ge=1, le=20, description="Then the household needs a supervisor's attention"
    )
    retry_refused_days: int = Field(default=30, ge=1, le=366, description="Refused: try again after N days")
    active: bool = True


class PolicyCreate(PolicyBase):
    code: str = Field(schema_extra={"pattern": CODE}, max_length=40)


class PolicyUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=60)
    cadence_days: int | None = Field(default=None, ge=1, le=366)
    min_age: int | None = Field(default=None, ge=0, le=130)
    all_tags: list[CareTag] | None = None
    retry_not_home_days: int | None = Field(default=None, ge=1, le=60)
    max_not_home_attempts: int | None = Field(default=None, ge=1, le=20)
    retry_refused_days: int | None = Field(default=None, ge=1, le=366)
    active: bool | None = None


class VisitPolicy(PolicyBase, VisitsModel, table=True):
    """A visiting tier. A household follows the most frequent tier any of its active residents matches; a
    tier without criteria (``standard``) matches every household."""

    __tablename__ = "visit_policies"
    id: UUID = uuid_pk()
    code: str = Field(max_length=40, unique=True)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class PolicyPublic(PolicyBase):
    id: UUID
    code: str
    updated_at: datetime


class RoundCreate(SQLModel):
    name: str = Field(min_length=1, max_length=80)
    community: str | None = Field(default=None, max_length=40, description="Every community when omitted")
    starts_on: Day
    ends_on: Day


class VisitRound(VisitsModel, table=True):
    """A carpet-style round (e.g. '2026 Q4'): every occupied household in scope, reached once in the window."""

    __tablename__ = "visit_rounds"
    __table_args__ = (sa.Index("ix_rounds_starts", "starts_on", "id"),)
    id: UUID = uuid_pk()
    name: str = Field(max_length=80)
    community: str | None = Field(default=None, max_length=40)
    starts_on: date
    ends_on: date
    created_by: str = Field(max_length=200)
    created_at: datetime = utc_now()


class RoundPublic(SQLModel):
    id: UUID
    name: str
    community: str | None
    starts_on: date
    ends_on: date
    created_by: str
    created_at: datetime


class ProgressRow(SQLModel):
    key: str
    name: str
    households: int
    reached: int
    attempted: int
    share: float


class RoundProgress(SQLModel):
    round: RoundPublic
    households: int
    reached: int
    attempted: int
    share: float
    by_compound: list[ProgressRow]
    by_worker: list[ProgressRow]


# --- visits and tasks ---------------------------------------------------------------------------------------


class NeedCreate(SQLModel):
    category: str = Field(
        schema_extra={"pattern": r"^[a-z][a-z_]{1,29}$"},
        description="e.g. mobility_aid, home_repair, health, elderly_care, environment, "
        "safety, road, subsidy, dispute, other",
    )
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    urgency: Urgency = Urgency.normal
    resident_id: UUID | None = Field(default=None, description="Whose need, when it is one person's")
    owner: str | None = Field(
        default=None, max_length=200, description="Ledger owner (subject); the recorder by default"
    )
    due_on: Day | None = Field(default=None, description="By urgency when omitted: 1/3/7/30 days")


class NeedRaise(NeedCreate):
    household_id: UUID


class VisitCreate(Positioned):
    household_id: UUID
    visited_at: Instant | None = Field(default=None, description="Now when omitted; may be back-dated")
    outcome: Outcome
    visitors: list[Annotated[str, text(100)]] = Field(
        default_factory=list, max_length=10, description="Who went (names), besides the recorder"
    )
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    notes: str | None = Field(default=None, max_length=4000)
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    task_id: UUID | None = None
    needs: list[NeedCreate] = Field(default_factory=list, max_length=20)
    photo_ids: list[UUID] = Field(default_factory=list, max_length=9, description="Your uploads (POST /visits/photos)")


class Visit(VisitsModel, table=True):
    __tablename__ = "visits"
    __table_args__ = (
        sa.Index("ix_visits_household_at", "household_id", "visited_at"),
        sa.Index("ix_visits_community_at", "community", "visited_at", "id"),
        sa.Index("ix_visits_compound_at", "compound", "visited_at", "id"),
        sa.Index("ix_visits_worker_at", "worker_id", "visited_at", "id"),
    )
    id: UUID = uuid_pk()
    household_id: UUID = Field(foreign_key="households.id")
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID
    worker_id: UUID | None = None
    recorded_by: str = Field(max_length=200)
    recorded_by_name: str | None = Field(default=None, max_length=50)
    visitors: list[str] = Field(default_factory=list, sa_type=JSONType)
    visited_at: datetime = utc_now()
    outcome: str = Field(sa_type=sa.String(12))
    latitude: float | None = None
    longitude: float | None = None
    distance_m: float | None = None
    far_from_home: bool = False
    notes: str | None = Field(default=None, sa_type=sa.Text)
    satisfaction: int | None = None
    task_id: UUID | None = None
    photo_urls: list[str] = Field(default_factory=list, sa_type=JSONType)
    created_at: datetime = utc_now()


class Photo(PhotoFields, VisitsModel, table=True):
    """Photos grid workers take on a visit (the bytes are in the object store)."""

    __tablename__ = "visit_photos"


class VisitPublic(SQLModel):
    id: UUID
    household_id: UUID
    community: str
    compound: str
    worker_id: UUID | None
    recorded_by: str
    recorded_by_name: str | None
    visitors: list[str]
    visited_at: datetime
    outcome: Outcome
    latitude: float | None
    longitude: float | None
    distance_m: float | None
    far_from_home: bool
    notes: str | None
    satisfaction: int | None
    task_id: UUID | None
    photo_urls: list[str] = []
    created_at: datetime


class TaskCreate(SQLModel):
    household_id: UUID
    resident_id: UUID | None = None
    reason: str = Field(min_length=1, max_length=500)
    urgent: bool = False
    due_at: Instant | None = None


class VisitTask(VisitsModel, table=True):
    """A visit someone asked for outside the regular round: a welfare check after a canteen absence alert,
    a supervisor's follow-up."""

    __tablename__ = "visit_tasks"
    __table_args__ = (
        sa.Index("ix_tasks_status_due", "status", "due_at", "id"),
        sa.Index("ix_tasks_worker_status_due", "assigned_worker_id", "status", "due_at"),
        sa.Index("ix_tasks_household_status", "household_id", "status"),
    )
    id: UUID = uuid_pk()
    kind: str = Field(sa_type=sa.String(20))
    household_id: UUID = Field(foreign_key="households.id")
    resident_id: UUID | None = None
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID
    urgent: bool = False
    reason: str = Field(max_length=500)
    source: str = Field(max_length=40, description="canteen, staff")
    alert_id: UUID | None = Field(default=None, unique=True)
    due_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default=TaskStatus.open, sa_type=sa.String(12))
    attempts: int = 0
    assigned_worker_id: UUID | None = None
    visit_id: UUID | None = None
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class TaskPublic(SQLModel):
    id: UUID
    kind: TaskKind
    household_id: UUID
    resident_id: UUID | None
    community: str
    compound: str
    urgent: bool
    reason: str
    source: str
    alert_id: UUID | None
    due_at: datetime
    overdue: bool = False
    status: TaskStatus
    attempts: int
    assigned_worker_id: UUID | None
    visit_id: UUID | None
    completed_at: datetime | None
    created_at: datetime


class TaskCancel(SQLModel):
    reason: str = Field(min_length=1, max_length=300)


class DueList(SQLModel):
    tasks: list[TaskPublic]
    households: list[HouseholdPublic]
    next_cursor: str | None = None


# --- needs ledger -------------------------------------------------------------------------------------------


class Need(VisitsModel, table=True):
    __tablename__ = "needs"
    __table_args__ = (
        sa.Index("ix_needs_community_created", "community", "created_at", "id"),
        sa.Index("ix_needs_compound_created", "compound", "created_at", "id"),
        sa.Index("ix_needs_owner_status_due", "owner", "status", "due_on"),
        sa.Index("ix_needs_status_due", "status", "due_on"),
        sa.Index("ix_needs_household_created", "household_id", "created_at"),
        sa.Index("ix_needs_resident", "resident_id"),
        sa.Index("ix_needs_issue", "issue_id"),
    )
    id: UUID = uuid_pk()
    household_id: UUID = Field(foreign_key="households.id")
    resident_id: UUID | None = None
    visit_id: UUID | None = None
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID
    category: str = Field(max_length=30)
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_type=sa.Text)
    urgency: str = Field(default=Urgency.normal, sa_type=sa.String(10))
    owner: str = Field(max_length=200)
    owner_name: str | None = Field(default=None, max_length=50)
    due_on: date
    status: str = Field(default=NeedStatus.open, sa_type=sa.String(12))
    raised_by: str = Field(max_length=200)
    raised_by_name: str | None = Field(default=None, max_length=50)
    issue_id: UUID | None = None
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution: str | None = Field(default=None, max_length=2000)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=200)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=200)
    closed_via: str | None = Field(default=None, max_length=20, description="resident, auto, supervisor, issue")
    close_reason: str | None = Field(default=None, max_length=2000)
    returned_reason: str | None = Field(default=None, max_length=2000)
    rating: int | None = None
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class NeedPublic(SQLModel):
    id: UUID
    household_id: UUID
    resident_id: UUID | None
    visit_id: UUID | None
    community: str
    compound: str
    category: str
    title: str
    description: str
    urgency: Urgency
    owner: str
    owner_name: str | None
    due_on: date
    overdue: bool = False
    status: NeedStatus
    raised_by: str
    raised_by_name: str | None
    issue_id: UUID | None
    escalated_at: datetime | None
    resolution: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    closed_via: str | None
    close_reason: str | None
    returned_reason: str | None
    rating: int | None
    created_at: datetime
    updated_at: datetime


class NeedNote(VisitsModel, table=True):
    """The ledger's history of one need: who did what, when, with what note. Append-only."""

    __tablename__ = "need_notes"
    __table_args__ = (sa.Index("ix_need_notes_need_at", "need_id", "at"),)
    id: UUID = uuid_pk()
    need_id: UUID = Field(foreign_key="needs.id")
    action: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=200)
    actor_name: str | None = Field(default=None, max_length=50)
    note: str | None = Field(default=None, max_length=2000)
    at: datetime = utc_now()


class NeedNotePublic(SQLModel):
    action: str
    actor: str | None
    actor_name: str | None
    note: str | None
    at: datetime


class NeedDetail(NeedPublic):
    history: list[NeedNotePublic]


class NeedUpdate(SQLModel):
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    due_on: Day | None = None
    urgency: Urgency | None = None
    note: str | None = Field(default=None, max_length=2000)


class NeedNoteBody(SQLModel):
    note: str | None = Field(default=None, max_length=2000)


class NeedResolve(SQLModel):
    resolution: str = Field(min_length=1, max_length=2000, description="What was done")


class NeedConfirm(SQLModel):
    rating: int | None = Field(default=None, ge=1, le=5)
    note: str | None = Field(default=None, max_length=2000)


class NeedReason(SQLModel):
    reason: str = Field(min_length=1, max_length=2000)


class NeedEscalate(SQLModel):
    note: str | None = Field(default=None, max_length=2000, description="What the community could not do")


class VisitRecorded(VisitPublic):
    needs: list[NeedPublic]
    tasks_completed: list[UUID] = []


# --- reports ------------------------------------------------------------------------------------------------


class BillLine(SQLModel):
    need_id: UUID
    raised_on: date
    raised_by: str | None
    for_resident: str | None
    category: str
    title: str
    status: NeedStatus
    done: str | None
    done_on: date | None
    done_by: str | None
    confirmed_on: date | None
    via_issue: UUID | None
    history: list[NeedNotePublic]


class BillVisit(SQLModel):
    visited_on: date
    outcome: Outcome
    by: str | None
    visitors: list[str]
    satisfaction: int | None


class Bill(SQLModel):
    """幸福账单: what a household (or one resident) raised and what was done, when and by whom."""

    household_id: UUID
    resident_id: UUID | None = None
    address: str
    community: str
    community_name: str | None
    compound_name: str | None
    members: list[str]
    since: date | None
    until: date | None
    raised: int
    done: int
    in_progress: int
    visits_count: int
    lines: list[BillLine]
    visits: list[BillVisit]
    generated_at: datetime


class CoverageRow(SQLModel):
    key: str
    name: str
    households: int
    visited: int
    visited_share: float
    overdue_households: int
    needs_open: int
    needs_overdue: int
    needs_closed: int
    median_days_to_close: float | None


class Coverage(SQLModel):
    by: str
    since: date
    until: date
    rows: list[CoverageRow]
    total: CoverageRow


# --- linking an app account by its verified phone (services/visits/linking.py) ---------------------------------


class AccountPhone(VisitsModel, table=True):
    """The WeChat-verified phone of an app account, from identity's account events: sealed like every phone
    here (masked, encrypted, keyed hash), to find the resident it may belong to by the hash alone."""

    __tablename__ = "account_phones"
    id: UUID = uuid_pk()
    account_subject: str = Field(max_length=200, unique=True)
    phone: str | None = Field(default=None, max_length=20)  # masked only
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    updated_at: datetime = utc_now()


class LinkRequestStatus(StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    rejected = "rejected"
    withdrawn = "withdrawn"  # the account was linked another way meanwhile


class LinkRequest(VisitsModel, table=True):
    """A resident account asking to be linked to the resident whose phone matches its verified phone; nothing
    is linked until the grid worker (or staff) of the household confirms."""

    __tablename__ = "link_requests"
    __table_args__ = (sa.UniqueConstraint("resident_id", "account_subject", name="uq_link_request_resident_account"),)
    id: UUID = uuid_pk()
    resident_id: UUID = Field(foreign_key="residents.id", index=True)
    account_subject: str = Field(max_length=200, index=True)
    community: str = Field(max_length=40)
    compound: str = Field(max_length=40)
    building_id: UUID
    status: str = Field(default=LinkRequestStatus.pending, sa_type=sa.String(10))
    created_at: datetime = utc_now()
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=200)


class LinkRequestPublic(SQLModel):
    """What the asking resident sees: not whom it matched (the grid worker confirms that at the door)."""

    id: UUID
    status: LinkRequestStatus
    created_at: datetime
    decided_at: datetime | None


class LinkRequestForStaff(LinkRequestPublic):
    resident_id: UUID
    resident_name: str
    account_subject: str
    compound: str


class LinkDecision(SQLModel):
    reason: str | None = Field(default=None, max_length=200)


# --- list filters: the query parameters of the lists with three or more -----------------------------------


class HouseholdFilters(ListFilters):
    community: CodeFilter = None
    compound: CodeFilter = None
    building_id: UUID | None = None
    tier: CodeFilter = None
    attention: Attention | None = None
    overdue: bool | None = None


class ResidentFilters(ListFilters):
    community: CodeFilter = None
    compound: CodeFilter = None
    household_id: UUID | None = None
    care_tag: CareTag | None = None
    min_age: Annotated[int, Interval(ge=0, le=130)] | None = None
    mobility: Mobility | None = None
    status: ResidentStatus | None = ResidentStatus.active


class DueFilters(ListFilters):
    """``worker_id``: a staff member sees that grid worker's list."""

    worker_id: UUID | None = None
    within_days: Annotated[int, Interval(ge=0, le=90)] = 0
    overdue_only: bool = False
    compound: CodeFilter = None


class TaskFilters(ListFilters):
    status: TaskStatus | None = TaskStatus.open
    kind: TaskKind | None = None
    worker_id: UUID | None = None
    community: CodeFilter = None


class VisitFilters(ListFilters):
    household_id: UUID | None = None
    worker_id: UUID | None = None
    community: CodeFilter = None
    compound: CodeFilter = None
    outcome: Outcome | None = None
    since: Instant | None = None
    until: Instant | None = None
    far_from_home: bool | None = None


class NeedFilters(ListFilters):
    """``status`` is repeatable (``?status=open&status=in_progress``); ``mine``: the needs the caller owns."""

    status: list[NeedStatus] | None = None
    owner: Annotated[str, text(200)] | None = None
    mine: bool = False
    community: CodeFilter = None
    compound: CodeFilter = None
    household_id: UUID | None = None
    resident_id: UUID | None = None
    category: CodeFilter = None
    overdue: bool = False
