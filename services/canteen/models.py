"""The canteen service's data: its own registry and metadata (its own database).

Money is integer fen (分) everywhere: 1000 fen = 10 yuan. Meal dates are local dates (county time zone);
every instant is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel, field_validator, model_validator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from minsheng.platform.coords import Positioned
from minsheng.platform.fields import json_list, utc_now, uuid_pk
from minsheng.platform.inputs import Day, Latitude, Longitude, text
from minsheng.platform.pagination import ListFilters
from minsheng.platform.personal_data import PersonalData
from minsheng.platform.privacy import MaskedPhone
from minsheng.platform.tables import install_platform_tables
from minsheng.platform.types import JSONType, UTCDateTime
from services.canteen import config


class CanteenModel(SQLModel, registry=registry()):
    pass


metadata = CanteenModel.metadata
platform_tables = install_platform_tables(metadata)

SLUG = r"^[a-z0-9][a-z0-9_-]{0,49}$"
# Slugs (canteen and community codes, subsidy rule keys) and short labels (tags, ingredients, meal kinds) in
# queries, paths and lists: as long as their columns or checks allow; a longer one is a 422.
SlugText = Annotated[str, text(50)]
Label = Annotated[str, text(30)]
PHONE = r"^\+?\d{7,15}$"


# --- vocabulary -------------------------------------------------------------------------------------------------


class CanteenStatus(StrEnum):
    planned = "planned"
    open = "open"
    suspended = "suspended"
    closed = "closed"


class Slot(StrEnum):
    breakfast = "breakfast"
    lunch = "lunch"
    dinner = "dinner"


class Circumstance(StrEnum):
    dibao = "dibao"  # 低保 minimum-living-allowance household
    tekun = "tekun"  # 特困 extreme-hardship support
    disabled = "disabled"
    living_alone = "living_alone"  # 独居
    age_80_plus = "age_80_plus"  # derived from the birth date on the meal date; may also be stated


class DietaryNeed(StrEnum):
    soft_food = "soft_food"
    low_salt = "low_salt"
    diabetic = "diabetic"
    low_fat = "low_fat"
    vegetarian = "vegetarian"
    halal = "halal"
    no_spicy = "no_spicy"


class DinerStatus(StrEnum):
    active = "active"
    suspended = "suspended"  # moved away: may still eat, at full price
    deceased = "deceased"
    withdrawn = "withdrawn"


class Fulfilment(StrEnum):
    dine_in = "dine_in"
    pickup = "pickup"
    delivery = "delivery"


class OrderStatus(StrEnum):
    booked = "booked"
    served = "served"  # checked in at the counter (dine-in or pickup)
    delivered = "delivered"
    cancelled = "cancelled"
    no_show = "no_show"


SERVED_STATUSES = (OrderStatus.served.value, OrderStatus.delivered.value)
ACTIVE_STATUSES = (
    OrderStatus.booked.value,
    OrderStatus.served.value,
    OrderStatus.delivered.value,
    OrderStatus.no_show.value,
)


class OrderChannel(StrEnum):
    app = "app"
    staff = "staff"
    walk_in = "walk_in"


class Payer(StrEnum):
    diner = "diner"
    family = "family"


class MenuStatus(StrEnum):
    draft = "draft"
    published = "published"


class LineStatus(StrEnum):
    claimed = "claimed"
    withheld = "withheld"  # the diner was found moved/deceased on the meal date: no claim
    cancelled = "cancelled"


class AlertStatus(StrEnum):
    open = "open"
    checked = "checked"  # the welfare visit happened
    resolved = "resolved"  # the diner came back


# --- canteens and meal slots ------------------------------------------------------------------------------------


class CanteenBase(SQLModel):
    code: str = Field(schema_extra={"pattern": SLUG}, max_length=50, description="Stable slug, e.g. yunxing-street")
    name: str = Field(min_length=1, max_length=100)
    address: str = Field(min_length=1, max_length=300)
    community: str = Field(
        schema_extra={"pattern": SLUG}, max_length=50, description="The community the canteen sits in"
    )
    communities: list[SlugText] = Field(
        default_factory=list, sa_type=JSONType, description="Communities it serves (service radius)"
    )
    operator: str = Field(min_length=1, max_length=200, description="The operating enterprise")
    operator_contact: str | None = Field(default=None, max_length=50)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    service_radius_m: int | None = Field(default=None, ge=0, le=50_000)
    delivery_points: int = Field(default=5, ge=0, le=1000, description="Points a rider earns per delivery")

    @field_validator("communities")
    @classmethod
    def _slugs(cls, v: list[str]) -> list[str]:
        import re

        for c in v:
            if not re.fullmatch(SLUG, c):
                raise ValueError(f"not a community slug: {c!r}")
        return sorted(set(v))


class CanteenCreate(CanteenBase, Positioned):
    status: CanteenStatus = CanteenStatus.planned


class CanteenUpdate(Positioned):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    address: str | None = Field(default=None, min_length=1, max_length=300)
    communities: list[SlugText] | None = None

    @field_validator("communities")
    @classmethod
    def _slugs(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else CanteenBase._slugs(v)  # type: ignore[operator]

    operator: str | None = Field(default=None, min_length=1, max_length=200)
    operator_contact: str | None = Field(default=None, max_length=50)
    status: CanteenStatus | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    service_radius_m: int | None = Field(default=None, ge=0, le=50_000)
    delivery_points: int | None = Field(default=None, ge=0, le=1000)


class Canteen(CanteenBase, CanteenModel, table=True):
    __tablename__ = "canteens"
    id: UUID = uuid_pk()
    code: str = Field(max_length=50, unique=True)
    status: str = Field(default=CanteenStatus.planned, sa_type=sa.String(12))
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class MealSlotBase(SQLModel):
    serve_from: time
    serve_until: time
    capacity: int = Field(default=100, ge=0, le=10_000, description="Default meals per service")
    cutoff_minutes: int = Field(
        default=120,
        ge=0,
        le=7 * 24 * 60,
        description="Booking and cancelling close this many minutes before serve_from",
    )
    deliver_by: time | None = Field(default=None, description="When deliveries are due (default serve_from+1h)")
    active: bool = True


class MealSlotUpsert(MealSlotBase):
    @model_validator(mode="after")
    def _order(self) -> MealSlotUpsert:
        if self.serve_until <= self.serve_from:
            raise ValueError("serve_until must be after serve_from")
        return self


class MealSlotRow(MealSlotBase, CanteenModel, table=True):
    __tablename__ = "meal_slots"
    canteen_id: UUID = Field(foreign_key="canteens.id", primary_key=True)
    slot: str = Field(sa_type=sa.String(10), primary_key=True)


class MealSlotPublic(MealSlotBase):
    slot: Slot


class CanteenPublic(CanteenBase):
    id: UUID
    status: CanteenStatus
    slots: list[MealSlotPublic] = []
    created_at: datetime
    updated_at: datetime


# --- diners ------------------------------------------------------------------------------------------------------


def plausible_birth(v: date) -> date:
    if v.year < 1900 or v > config.today():  # the county's calendar (and the pinned clock), not the server's
        raise ValueError("birth_date is not plausible")
    return v


def clean_dislikes(v: list[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in v if s.strip()})
    if len(cleaned) > 30 or any(len(s) > 30 for s in cleaned):
        raise ValueError("at most 30 dislikes of at most 30 characters")
    return cleaned


class DinerBase(SQLModel):
    name: str = Field(min_length=1, max_length=50)
    gender: str | None = Field(default=None, max_length=10)
    birth_date: Day
    community: str = Field(schema_extra={"pattern": SLUG}, max_length=50)
    compound: str | None = Field(default=None, schema_extra={"pattern": SLUG}, max_length=50)
    address: str | None = Field(default=None, max_length=300)
    circumstances: list[Circumstance] = Field(default_factory=list, sa_type=JSONType)
    dietary: list[DietaryNeed] = Field(
        default_factory=list, sa_type=JSONType, description="Restrictions: soft_food, low_salt, diabetic, …"
    )
    dislikes: list[Label] = Field(default_factory=list, sa_type=JSONType, description="Ingredients to avoid")
    taste_notes: str | None = Field(default=None, max_length=500, description="Tastes and preferences")
    delivery_eligible: bool = Field(default=False, description="Cannot walk to the canteen: meals delivered")
    delivery_address: str | None = Field(default=None, max_length=300)

    @field_validator("birth_date")
    @classmethod
    def _plausible(cls, v: date) -> date:
        return plausible_birth(v)

    @field_validator("dislikes")
    @classmethod
    def _dislikes(cls, v: list[str]) -> list[str]:
        return clean_dislikes(v)


class DinerCreate(DinerBase):
    canteen_id: UUID = Field(description="Home canteen")
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})
    id_number: str | None = Field(
        default=None, schema_extra={"pattern": r"^\d{17}[\dXx]$"}, description="Resident ID (encrypted at rest)"
    )
    health_notes: str | None = Field(default=None, max_length=2000, description="Encrypted at rest")
    resident_id: UUID | None = Field(default=None, description="The visits service's resident, when known")
    subject: str | None = Field(default=None, max_length=200, description="The elder's own login (JWT sub)")


class DinerUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    birth_date: Day | None = None
    id_number: str | None = Field(
        default=None,
        schema_extra={"pattern": r"^\d{17}[\dXx]$"},
        description="Corrects the ID number (encrypted at rest)",
    )
    canteen_id: UUID | None = None
    community: str | None = Field(default=None, schema_extra={"pattern": SLUG}, max_length=50)
    compound: str | None = Field(default=None, schema_extra={"pattern": SLUG}, max_length=50)
    address: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})
    circumstances: list[Circumstance] | None = None
    dietary: list[DietaryNeed] | None = None
    dislikes: list[Label] | None = None
    taste_notes: str | None = Field(default=None, max_length=500)
    delivery_eligible: bool | None = None
    delivery_address: str | None = Field(default=None, max_length=300)
    health_notes: str | None = Field(default=None, max_length=2000)
    resident_id: UUID | None = None
    subject: str | None = Field(default=None, max_length=200)
    away_from: Day | None = None
    away_until: Day | None = None

    @field_validator("dislikes")
    @classmethod
    def _dislikes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else clean_dislikes(v)

    @field_validator("birth_date")
    @classmethod
    def _plausible(cls, v: date | None) -> date | None:
        return None if v is None else plausible_birth(v)


class Diner(DinerBase, PersonalData, CanteenModel, table=True):
    __tablename__ = "diners"
    __table_args__ = (
        sa.Index("ix_diners_canteen_name", "canteen_id", "name", "id"),
        sa.Index("ix_diners_community_name", "community", "name", "id"),
        sa.Index("ix_diners_compound_name", "compound", "name", "id"),
    )
    id: UUID = uuid_pk()
    canteen_id: UUID = Field(foreign_key="canteens.id")
    resident_id: UUID | None = Field(default=None, index=True)
    subject: str | None = Field(default=None, max_length=200, unique=True)
    card_code: str = Field(max_length=16, unique=True, description="Printed on the diner's QR card")
    id_number_hash: str | None = Field(default=None, max_length=64, index=True, unique=True)  # one elder, one diner
    status: str = Field(default=DinerStatus.active, sa_type=sa.String(12))
    subsidy_suspended_from: date | None = None
    status_reason: str | None = Field(default=None, max_length=200)
    status_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    away_from: date | None = None
    away_until: date | None = None
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class FamilyMemberBase(SQLModel):
    subject: str = Field(min_length=1, max_length=200, description="The family member's login (JWT sub)")
    name: str = Field(min_length=1, max_length=50)
    relation: str = Field(min_length=1, max_length=20, description="e.g. son, daughter, spouse")
    can_order: bool = True
    can_pay: bool = True


class FamilyMemberCreate(FamilyMemberBase):
    phone: str | None = Field(default=None, schema_extra={"pattern": PHONE})


class FamilyMember(FamilyMemberBase, CanteenModel, table=True):
    __tablename__ = "diner_family"
    __table_args__ = (sa.UniqueConstraint("diner_id", "subject", name="uq_family_diner_subject"),)
    id: UUID = uuid_pk()
    diner_id: UUID = Field(foreign_key="diners.id")
    subject: str = Field(max_length=200, index=True)
    phone: str | None = Field(default=None, max_length=20)  # masked only
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)  # AES-GCM + AAD
    phone_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    created_at: datetime = utc_now()


class FamilyMemberPublic(FamilyMemberBase):
    id: UUID
    phone: MaskedPhone


class DinerPublic(DinerBase):
    id: UUID
    canteen_id: UUID
    age: int
    phone: MaskedPhone
    id_number: str | None = Field(description="Masked: 110105********1234")
    has_health_notes: bool
    resident_id: UUID | None
    card_code: str
    status: DinerStatus
    subsidy_suspended_from: date | None
    status_reason: str | None
    away_from: date | None
    away_until: date | None
    family: list[FamilyMemberPublic] = []
    created_at: datetime
    updated_at: datetime


class DinerLookup(SQLModel):
    id_number: str = Field(schema_extra={"pattern": r"^\d{17}[\dXx]$"})


class DinerSensitive(BaseModel):
    """Unmasked personal data; every read is written to the access log."""

    id: UUID
    phone: str | None
    id_number: str | None
    health_notes: str | None


class PiiAccess(CanteenModel, table=True):
    __tablename__ = "pii_access_log"
    __table_args__ = (sa.Index("ix_pii_access_diner_at", "diner_id", "at"),)
    id: UUID = uuid_pk()
    diner_id: UUID
    subject: str = Field(max_length=200)
    fields: list[str] = json_list()
    purpose: str = Field(max_length=200)
    at: datetime = utc_now()


class PiiAccessPublic(SQLModel):
    id: UUID
    subject: str
    fields: list[str]
    purpose: str
    at: datetime


class DinerFilters(ListFilters):
    """The diner list's filters (query parameters); ``name`` matches the start of a name."""

    canteen_id: UUID | None = None
    community: SlugText | None = None
    status: DinerStatus | None = None
    name: Annotated[str | None, text(50)] = None
    delivery: bool | None = None


# --- menus -------------------------------------------------------------------------------------------------------


class Dish(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    tags: list[Label] = Field(
        default_factory=list,
        max_length=20,
        description="soft, low_salt, diabetic_friendly, low_fat, vegetarian, halal, spicy, …",
    )
    ingredients: list[Label] = Field(default_factory=list, max_length=30)


class SetMealBase(SQLModel):
    name: str = Field(min_length=1, max_length=100, description="e.g. 四菜一汤 four dishes and a soup")
    kind: str = Field(default="standard", max_length=30, description="standard, soft, diabetic, …")
    price_fen: int = Field(ge=0, le=100_000, description="Full price in fen (1000 = 10 yuan)")
    dishes: list[Dish] = Field(default_factory=list, sa_type=JSONType, max_length=12)
    tags: list[Label] = Field(default_factory=list, sa_type=JSONType, max_length=20)


class SetMealCreate(SetMealBase):
    pass


class SetMeal(SetMealBase, CanteenModel, table=True):
    __tablename__ = "set_meals"
    id: UUID = uuid_pk()
    menu_id: UUID = Field(foreign_key="menus.id", index=True)
    position: int = 0
    dishes: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)  # type: ignore[assignment]


class SetMealPublic(SetMealBase):
    id: UUID
    suitable: bool | None = Field(default=None, description="Given ?diner_id / ?needs: fits the restrictions")
    conflicts: list[str] = []


class MenuUpsert(SQLModel):
    set_meals: list[SetMealCreate] = Field(min_length=1, max_length=10)
    capacity: int | None = Field(default=None, ge=0, le=10_000, description="Default: the slot's capacity")
    note: str | None = Field(default=None, max_length=500)


class Menu(CanteenModel, table=True):
    __tablename__ = "menus"
    __table_args__ = (
        sa.UniqueConstraint("canteen_id", "meal_date", "slot", name="uq_menu_canteen_date_slot"),
        sa.CheckConstraint("booked >= 0", name="ck_menu_booked_non_negative"),
    )
    id: UUID = uuid_pk()
    canteen_id: UUID = Field(foreign_key="canteens.id")
    meal_date: date
    slot: str = Field(sa_type=sa.String(10))
    status: str = Field(default=MenuStatus.draft, sa_type=sa.String(10))
    capacity: int = 0
    booked: int = 0
    note: str | None = Field(default=None, max_length=500)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class MenuPublic(SQLModel):
    id: UUID
    canteen_id: UUID
    meal_date: date
    slot: Slot
    status: MenuStatus
    capacity: int
    booked: int
    remaining: int
    note: str | None
    published_at: datetime | None
    set_meals: list[SetMealPublic]


class CapacityUpdate(SQLModel):
    capacity: int = Field(ge=0, le=10_000)


class MenuCopy(SQLModel):
    from_date: Day = Field(description="First day to copy from")
    to_date: Day = Field(description="First day to copy to (today or later)")
    days: int = Field(default=7, ge=1, le=31)


class PublishRange(SQLModel):
    date_from: Day
    date_to: Day

    @model_validator(mode="after")
    def _range(self) -> PublishRange:
        if self.date_to < self.date_from or (self.date_to - self.date_from).days > 31:
            raise ValueError("date_to must be on or after date_from, at most 31 days later")
        return self


class MenuFilters(ListFilters):
    """The menu list's filters (query parameters): the dates (from today, a week, unless given), a slot, drafts
    too (the canteen's staff), and which set meals suit a diner (``diner_id``) or a set of ``needs``."""

    date_from: Day | None = None
    date_to: Day | None = None
    slot: Slot | None = None
    diner_id: UUID | None = None
    needs: list[DietaryNeed] | None = None
    only_suitable: bool = False
    include_drafts: bool = False


# --- subsidy rules -----------------------------------------------------------------------------------------------


class SubsidyRuleTerms(SQLModel):
    """What a version of a rule says. Conditions left empty match everything."""

    name: str = Field(min_length=1, max_length=100)
    category: str = Field(
        schema_extra={"pattern": SLUG}, max_length=50, description="Claim category, e.g. age_80_plus, dibao"
    )
    funder: str = Field(
        schema_extra={"pattern": SLUG}, max_length=50, description="Who reimburses, e.g. county_civil_affairs"
    )
    amount_fen: int = Field(ge=0, le=100_000, description="Subsidy per meal, in fen")
    stack_group: str = Field(
        default="base",
        schema_extra={"pattern": SLUG},
        max_length=30,
        description="Within a group only the largest matching subsidy applies; groups add up",
    )
    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)
    circumstances: list[Circumstance] = Field(
        default_factory=list, sa_type=JSONType, description="Any of these (empty: no condition)"
    )
    slots: list[Slot] = Field(default_factory=list, sa_type=JSONType)
    fulfilments: list[Fulfilment] = Field(default_factory=list, sa_type=JSONType)
    meal_kinds: list[Label] = Field(default_factory=list, sa_type=JSONType)
    canteen_ids: list[UUID] = Field(default_factory=list, sa_type=JSONType)
    daily_cap_fen: int | None = Field(default=None, ge=0, description="Per diner per day, from this rule")
    monthly_cap_fen: int | None = Field(default=None, ge=0, description="Per diner per month, from this rule")

    @model_validator(mode="after")
    def _ages(self) -> SubsidyRuleTerms:
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("max_age must be at least min_age")
        return self


class SubsidyRuleCreate(SubsidyRuleTerms):
    key: str = Field(schema_extra={"pattern": SLUG}, max_length=50, description="Stable name across versions")
    effective_from: Day
    effective_to: Day | None = None


class SubsidyRuleVersionCreate(SubsidyRuleTerms):
    effective_from: Day
    effective_to: Day | None = None


class SubsidyRuleRetire(SQLModel):
    effective_to: Day = Field(description="Last day the rule applies")


class SubsidyRule(SubsidyRuleTerms, CanteenModel, table=True):
    __tablename__ = "subsidy_rules"
    __table_args__ = (
        sa.UniqueConstraint("key", "version", name="uq_subsidy_rule_key_version"),
        sa.Index("ix_subsidy_rules_effective", "effective_from", "effective_to"),
    )
    id: UUID = uuid_pk()
    key: str = Field(max_length=50)
    version: int = 1
    effective_from: date
    effective_to: date | None = None
    canteen_ids: list[str] = Field(default_factory=list, sa_type=JSONType)  # type: ignore[assignment]
    created_by: str = Field(max_length=200)
    created_at: datetime = utc_now()


class SubsidyRulePublic(SubsidyRuleTerms):
    id: UUID
    key: str
    version: int
    effective_from: date
    effective_to: date | None
    created_by: str
    created_at: datetime


class SubsidyLinePublic(BaseModel):
    rule_id: UUID
    rule_key: str
    rule_version: int
    category: str
    funder: str
    amount_fen: int
    status: LineStatus = LineStatus.claimed


class FundingShare(BaseModel):
    funder: str
    amount_fen: int


class Quote(BaseModel):
    price_fen: int
    subsidy_fen: int
    elder_pays_fen: int
    lines: list[SubsidyLinePublic]
    funding: list[FundingShare]
    notes: list[str] = []


class QuoteRequest(BaseModel):
    diner_id: UUID
    menu_id: UUID
    set_meal_id: UUID
    fulfilment: Fulfilment = Fulfilment.dine_in


class SubsidyLine(CanteenModel, table=True):
    """What each rule paid on an order, frozen at order time. Settlement and caps read these rows."""

    __tablename__ = "order_subsidy_lines"
    __table_args__ = (
        sa.Index("ix_subsidy_lines_diner_rule_date", "diner_id", "rule_key", "meal_date"),
        sa.Index("ix_subsidy_lines_canteen_date", "canteen_id", "meal_date"),
    )
    id: UUID = uuid_pk()
    order_id: UUID = Field(foreign_key="orders.id", index=True)
    diner_id: UUID
    canteen_id: UUID
    meal_date: date
    rule_id: UUID
    rule_key: str = Field(max_length=50)
    rule_version: int
    category: str = Field(max_length=50)
    funder: str = Field(max_length=50)
    amount_fen: int
    status: str = Field(default=LineStatus.claimed, sa_type=sa.String(10))


# --- orders ------------------------------------------------------------------------------------------------------


class OrderCreate(SQLModel):
    diner_id: UUID
    menu_id: UUID
    set_meal_id: UUID
    fulfilment: Fulfilment = Fulfilment.dine_in
    delivery_address: str | None = Field(
        default=None, max_length=300, description="Default: the diner's delivery address"
    )
    note: str | None = Field(default=None, max_length=300)
    extra: bool = Field(default=False, description="A second meal in the same slot: never subsidised")


class BatchItem(SQLModel):
    menu_id: UUID
    set_meal_id: UUID
    fulfilment: Fulfilment = Fulfilment.dine_in


class OrderBatchCreate(SQLModel):
    """A week of meals for one diner in one go: all of them are booked, or none."""

    diner_id: UUID
    items: list[BatchItem] = Field(min_length=1, max_length=21)
    delivery_address: str | None = Field(default=None, max_length=300)
    note: str | None = Field(default=None, max_length=300)


class WalkInCreate(SQLModel):
    diner_id: UUID | None = None
    card_code: str | None = Field(default=None, max_length=16)
    set_meal_id: UUID
    fulfilment: Fulfilment = Fulfilment.dine_in
    extra: bool = False

    @model_validator(mode="after")
    def _who(self) -> WalkInCreate:
        if (self.diner_id is None) == (self.card_code is None):
            raise ValueError("give exactly one of diner_id or card_code")
        if self.fulfilment == Fulfilment.delivery:
            raise ValueError("a walk-in cannot be a delivery")
        return self


class CheckIn(SQLModel):
    code: str = Field(min_length=4, max_length=16, description="The order's pickup code or the diner's card code")
    slot: Slot | None = Field(default=None, description="Default: the slot being served now")


class Cancellation(SQLModel):
    reason: str = Field(default="cancelled by diner", min_length=1, max_length=200)


class Order(CanteenModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # At most one subsidy-eligible meal per diner per slot, whatever the concurrency.
        sa.Index(
            "uq_orders_one_meal_per_slot",
            "diner_id",
            "meal_date",
            "slot",
            unique=True,
            postgresql_where=sa.text("NOT is_extra AND status <> 'cancelled'"),
            sqlite_where=sa.text("NOT is_extra AND status <> 'cancelled'"),
        ),
        sa.Index("ix_orders_canteen_day", "canteen_id", "meal_date", "slot", "status"),
        sa.Index("ix_orders_diner_day", "diner_id", "meal_date"),
        sa.Index("ix_orders_diner_created", "diner_id", "created_at", "id"),
        sa.Index("ix_orders_canteen_created", "canteen_id", "created_at", "id"),
        sa.Index("ix_orders_pickup_code", "canteen_id", "pickup_code"),
        # The absence scan (who ate when, across canteens) and the no-show sweep (old bookings).
        sa.Index("ix_orders_day_status_diner", "meal_date", "status", "diner_id"),
        sa.Index(
            "ix_orders_open_bookings",
            "meal_date",
            postgresql_where=sa.text("status = 'booked'"),
            sqlite_where=sa.text("status = 'booked'"),
        ),
        sa.CheckConstraint("price_fen = subsidy_fen + elder_pays_fen", name="ck_orders_money_adds_up"),
    )
    id: UUID = uuid_pk()
    canteen_id: UUID = Field(foreign_key="canteens.id")
    diner_id: UUID = Field(foreign_key="diners.id")
    menu_id: UUID = Field(foreign_key="menus.id")
    set_meal_id: UUID = Field(foreign_key="set_meals.id")
    set_meal_name: str = Field(max_length=100)
    meal_date: date
    slot: str = Field(sa_type=sa.String(10))
    fulfilment: str = Field(sa_type=sa.String(10))
    status: str = Field(default=OrderStatus.booked, sa_type=sa.String(10))
    channel: str = Field(sa_type=sa.String(10))
    is_extra: bool = False
    price_fen: int
    subsidy_fen: int
    elder_pays_fen: int
    payer: str = Field(sa_type=sa.String(10))
    payer_subject: str | None = Field(default=None, max_length=200)
    booked_by: str = Field(max_length=200)
    pickup_code: str = Field(max_length=16)
    community: str = Field(max_length=50)
    compound: str | None = Field(default=None, max_length=50)
    dietary: list[str] = json_list()
    delivery_address: str | None = Field(default=None, max_length=300)
    deliver_by: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=300)
    checked_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checked_in_by: str | None = Field(default=None, max_length=200)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rider_task_id: UUID | None = None
    rider_claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: str | None = Field(default=None, max_length=200)
    cancel_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_now()
    updated_at: datetime = utc_now()


class OrderPublic(SQLModel):
    id: UUID
    canteen_id: UUID
    diner_id: UUID
    menu_id: UUID
    set_meal_id: UUID
    set_meal_name: str
    meal_date: date
    slot: Slot
    fulfilment: Fulfilment
    status: OrderStatus
    channel: OrderChannel
    is_extra: bool
    price_fen: int
    subsidy_fen: int
    elder_pays_fen: int
    payer: Payer
    subsidy_lines: list[SubsidyLinePublic] = []
    funding: list[FundingShare] = []
    pickup_code: str
    dietary: list[str]
    delivery_address: str | None
    deliver_by: datetime | None
    note: str | None
    checked_in_at: datetime | None
    delivered_at: datetime | None
    rider_task_id: UUID | None
    rider_claimed_at: datetime | None = Field(description="A rider took the delivery (on the way)")
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime


class OrderFilters(ListFilters):
    """The order list's filters (query parameters): without a diner or canteen, the caller's own diners'."""

    diner_id: UUID | None = None
    canteen_id: UUID | None = None
    meal_date: Day | None = None
    status: OrderStatus | None = None
    fulfilment: Fulfilment | None = None


# --- care signals --------------------------------------------------------------------------------------------


class AbsenceAlertRow(CanteenModel, table=True):
    __tablename__ = "absence_alerts"
    __table_args__ = (
        # One alert per absence spell: the spell is named by the last meal before it.
        sa.UniqueConstraint("diner_id", "last_meal_on", name="uq_absence_spell"),
        sa.Index("ix_absence_canteen_raised", "canteen_id", "raised_at", "id"),
    )
    id: UUID = uuid_pk()
    diner_id: UUID = Field(foreign_key="diners.id")
    canteen_id: UUID
    resident_id: UUID | None = None
    last_meal_on: date
    days_absent: int
    meals_in_window: int
    status: str = Field(default=AlertStatus.open, sa_type=sa.String(10))
    raised_at: datetime = utc_now()
    visit_id: UUID | None = None
    outcome: str | None = Field(default=None, max_length=20)
    checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AbsenceAlertPublic(SQLModel):
    id: UUID
    diner_id: UUID
    canteen_id: UUID
    resident_id: UUID | None
    last_meal_on: date
    days_absent: int
    meals_in_window: int
    status: AlertStatus
    raised_at: datetime
    visit_id: UUID | None
    outcome: str | None
    checked_at: datetime | None
    resolved_at: datetime | None


class ScanResult(BaseModel):
    on: date
    candidates: int
    raised: int
    resolved: int


# --- settlement ---------------------------------------------------------------------------------------------------


class SettlementRow(CanteenModel, table=True):
    __tablename__ = "settlements"
    __table_args__ = (sa.UniqueConstraint("canteen_id", "month", name="uq_settlement_canteen_month"),)
    id: UUID = uuid_pk()
    canteen_id: UUID = Field(foreign_key="canteens.id")
    month: str = Field(max_length=7)
    figures: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    claim_csv: str = Field(sa_type=sa.Text, description="The claim file as submitted, frozen at closing")
    csv_sha256: str = Field(max_length=64)
    closed_by: str = Field(max_length=200)
    closed_at: datetime = utc_now()


# --- family link codes (services/canteen/linking.py) -----------------------------------------------------------


class FamilyCodeCreate(SQLModel):
    """Who the code is for, as the staff member or grid worker handing it over knows them."""

    name: str = Field(min_length=1, max_length=50)
    relation: str = Field(min_length=1, max_length=20, description="e.g. son, daughter, spouse")
    can_order: bool = True
    can_pay: bool = True


class FamilyCode(CanteenModel, table=True):
    """A one-time code linking a family member's account to a diner; only its keyed hash is stored."""

    __tablename__ = "family_link_codes"
    id: UUID = uuid_pk()
    diner_id: UUID = Field(foreign_key="diners.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=50)
    relation: str = Field(max_length=20)
    can_order: bool = True
    can_pay: bool = True
    issued_by: str = Field(max_length=200)
    created_at: datetime = utc_now()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: str | None = Field(default=None, max_length=200)
    member_id: UUID | None = None


class FamilyCodePublic(SQLModel):
    diner_id: UUID
    code: str = Field(description="Show it once (a QR code or read out); it links one account, then never again")
    expires_at: datetime


class FamilyCodeRedeem(SQLModel):
    code: str = Field(min_length=1, max_length=40)


class FamilyLinkAudit(CanteenModel, table=True):
    """Every code issued and every redemption tried (the failures also count towards the attempt limit)."""

    __tablename__ = "family_link_audit"
    __table_args__ = (sa.Index("ix_family_link_audit_subject_at", "subject", "at"),)
    id: UUID = uuid_pk()
    subject: str = Field(max_length=200)
    action: str = Field(max_length=20)  # issued | linked | relinked | failed
    diner_id: UUID | None = None
    code_id: UUID | None = None
    at: datetime = utc_now()
