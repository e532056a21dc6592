"""Events the canteen service publishes."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from minsheng.contracts.base import IntegrationEvent, contract, example


class FamilyContact(BaseModel):
    """A diner's family member as the notify service needs them to pass on an absence alert: their login
    (``subject``, when they have one) and, for families without WeChat, the phone the canteen holds for them.
    Personal information: the phone is in clear on the wire (topic ACL: visits and notify only) because
    notify must be able to text it; it is encrypted at rest on both ends."""

    model_config = ConfigDict(frozen=True)

    member_id: UUID
    subject: str | None = None
    relation: str | None = None
    phone: str | None = None


MealSlot = Literal["breakfast", "lunch", "dinner"]


class OrderEvent(IntegrationEvent):
    """An event of one meal order (topic ``canteen.order``, keyed by the order)."""

    topic: ClassVar[str] = "canteen.order"
    key_field: ClassVar[str] = "order_id"


@contract
class DeliveryRequested(OrderEvent):
    """An elder's meal needs taking to their door: the points service posts it as a rider task. The address
    is what a rider needs to deliver; the elder's phone and ID never travel."""

    event_type: ClassVar[str] = "minsheng.canteen.delivery.requested.v1"
    model_config = example(
        order_id="01936f2e-c000-7000-8000-000000000010",
        canteen_id="01936f2e-c000-7000-8000-000000000001",
        canteen_name="云兴街幸福食堂",
        meal_date="2026-11-27",
        slot="lunch",
        deliver_by="2026-11-27T12:00:00Z",
        pickup_address="Yunxing Street 12",
        delivery_address="Yuntaiyuan building 3, unit 2, 501",
        community="yunxing",
        compound="yuntaiyuan",
        points=5,
    )

    order_id: UUID
    canteen_id: UUID
    canteen_name: str
    meal_date: date
    slot: MealSlot
    deliver_by: datetime
    pickup_address: str
    delivery_address: str
    community: str | None = None
    compound: str | None = None
    points: int = Field(default=5, ge=0)


@contract
class DeliveryCancelled(OrderEvent):
    """A delivery order was cancelled before pickup: the rider task is withdrawn."""

    event_type: ClassVar[str] = "minsheng.canteen.delivery.cancelled.v1"
    model_config = example(
        order_id="01936f2e-c000-7000-8000-000000000010",
        reason="diner cancelled",
        cancelled_at="2026-11-27T08:00:00Z",
        diner_id="01936f2e-c000-7000-8000-000000000002",
        meal_date="2026-11-27",
        slot="lunch",
        family_subjects=["family-zhao-son"],
    )

    order_id: UUID
    reason: str
    cancelled_at: datetime
    # Added in place (optional) so notify can tell the diner's family: who ate, which meal, the logins of the
    # family members (no phones: this topic is also read by points).
    diner_id: UUID | None = None
    meal_date: date | None = None
    slot: MealSlot | None = None
    family_subjects: list[str] = []


class DinerEvent(IntegrationEvent):
    """An event of one diner (topic ``canteen.diner``, keyed by the diner)."""

    topic: ClassVar[str] = "canteen.diner"
    key_field: ClassVar[str] = "diner_id"


@contract
class AbsenceAlert(DinerEvent):
    """A regular diner stopped coming: the visits service schedules an urgent welfare check."""

    event_type: ClassVar[str] = "minsheng.canteen.diner.absence_alert.v1"
    model_config = example(
        alert_id="01936f2e-c000-7000-8000-000000000020",
        diner_id="01936f2e-c000-7000-8000-000000000002",
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        canteen_id="01936f2e-c000-7000-8000-000000000001",
        community="yunxing",
        compound="yuntaiyuan",
        last_meal_on="2026-11-23",
        days_absent=3,
        meals_last_30_days=26,
        raised_at="2026-11-27T07:00:00Z",
        family_contacts=[
            {
                "member_id": "01936f2e-c000-7000-8000-000000000030",
                "subject": "family-zhao-son",
                "relation": "son",
                "phone": "13912345678",
            }
        ],
        id_number_hash="5f2b0c3e8d1a4b6c9e7f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
    )
    # The family's contacts travel so notify can reach them (by SMS when they have no account): declared
    # personal data, added in place (optional).
    personal_data: ClassVar[frozenset[str]] = frozenset({"family_contacts"})

    alert_id: UUID
    diner_id: UUID
    resident_id: UUID | None = None  # the visits service's resident, when the diner is linked to one
    canteen_id: UUID
    community: str | None = None
    compound: str | None = None
    last_meal_on: date
    days_absent: int
    meals_last_30_days: int
    raised_at: datetime
    family_contacts: list[FamilyContact] = []
    # The keyed lookup hash (HMAC, MINSHENG_FIELD_LOOKUP_KEY) of the diner's ID number: lets the visits service
    # find the resident when the diner is not linked yet. Never the number itself.
    id_number_hash: str | None = None


@contract
class OrderDelivered(OrderEvent):
    """A delivery order reached the elder (the rider's task completed, or staff recorded it)."""

    event_type: ClassVar[str] = "minsheng.canteen.order.delivered.v1"
    model_config = example(
        order_id="01936f2e-c000-7000-8000-000000000010",
        delivered_at="2026-11-27T11:40:00Z",
        rider_task_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0f",
        diner_id="01936f2e-c000-7000-8000-000000000002",
        meal_date="2026-11-27",
        slot="lunch",
        family_subjects=["family-zhao-son"],
    )

    order_id: UUID
    delivered_at: datetime
    rider_task_id: UUID | None = None
    # Added in place (optional) so notify can tell the diner's family; no phones (see DeliveryCancelled).
    diner_id: UUID | None = None
    meal_date: date | None = None
    slot: MealSlot | None = None
    family_subjects: list[str] = []


@contract
class SubsidySuspended(DinerEvent):
    """A diner's meal subsidy stopped (the visits service said the resident moved away or died): from
    ``effective_from`` their meals are at full price and their booked meals from then on were cancelled.
    Names the family members' logins so notify can tell them; no phones, no ID number."""

    event_type: ClassVar[str] = "minsheng.canteen.diner.subsidy_suspended.v1"
    model_config = example(
        diner_id="01936f2e-c000-7000-8000-000000000002",
        canteen_id="01936f2e-c000-7000-8000-000000000001",
        canteen_name="云兴街幸福食堂",
        reason="moved",
        effective_from="2026-12-01",
        cancelled_orders=3,
        family_subjects=["family-zhao-son"],
        suspended_at="2026-12-06T09:00:00Z",
    )

    diner_id: UUID
    canteen_id: UUID
    canteen_name: str | None = None
    reason: Literal["moved", "deceased"]
    effective_from: date
    cancelled_orders: int = 0
    family_subjects: list[str] = []
    suspended_at: datetime


@contract
class FamilyMemberLinked(DinerEvent):
    """A family member's app account (``account_id``, the JWT ``sub``) was linked to a diner: they redeemed
    the one-time code canteen staff or the grid worker handed over (``door_code``), or staff or the elder
    added them (``added``). ``member_id`` is the family record notify's ``canteen.family`` links point at.
    Published by canteen, which makes the link (identity's topic has one writer, identity)."""

    event_type: ClassVar[str] = "minsheng.canteen.diner.family_linked.v1"
    model_config = example(
        diner_id="01936f2e-c000-7000-8000-000000000002",
        member_id="01936f2e-c000-7000-8000-000000000020",
        account_id="01936f2e-1d00-7000-8000-000000000001",
        relation="son",
        method="door_code",
        linked_at="2026-12-06T09:34:00Z",
    )

    diner_id: UUID
    member_id: UUID
    account_id: str = Field(max_length=200)
    relation: str | None = Field(default=None, max_length=20)
    method: Literal["door_code", "added"]
    linked_at: datetime
