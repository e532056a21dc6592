"""Events the points service publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from minsheng.contracts.base import IntegrationEvent, Origin, contract, example

HazardCategory = Literal["fire", "gas_leak", "water_leak", "road", "other"]
URGENT_HAZARDS: frozenset[str] = frozenset({"fire", "gas_leak", "water_leak"})


@contract
class HazardReported(IntegrationEvent):
    """A rider reported a hazard. Fire, gas and water leaks are urgent."""

    event_type: ClassVar[str] = "minsheng.points.hazard.reported.v1"
    topic: ClassVar[str] = "points.hazard"
    key_field: ClassVar[str] = "report_id"
    model_config = example(
        report_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0e",
        rider_id="01936f2e-0000-7000-8000-000000000001",
        category="fire",
        urgent=True,
        description="Rubbish bin on fire by the Gangcheng theatre",
        latitude=40.0134,
        longitude=112.7032,
        address="Gangcheng theatre, west gate",
        community="yunxing",
        compound="yuntaiyuan",
        photo_urls=["/points/photos/01936f2e-8c9a-7b3c-9d4e-000000000007"],
        reported_at="2026-11-27T09:30:00Z",
    )

    report_id: UUID
    rider_id: UUID
    category: HazardCategory
    urgent: bool
    description: str = Field(max_length=2000)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = None
    community: str | None = None
    compound: str | None = None
    photo_urls: list[str] = []  # the rider's uploads by their stable paths (/points/photos/<id>)
    reported_at: datetime
    # Another rider reported the same hazard (same category, place and time) first: this report is a
    # duplicate of that one, which the issues service may use to attach it to the same issue.
    duplicate_of: UUID | None = None


class TaskEvent(IntegrationEvent):
    """An event of one rider task (topic ``points.task``, keyed by the task)."""

    topic: ClassVar[str] = "points.task"
    key_field: ClassVar[str] = "task_id"


@contract
class TaskCompleted(TaskEvent):
    """A rider completed a governance task and it was verified. ``origin`` names the requesting service's
    object when another service posted the task (e.g. a canteen delivery order)."""

    event_type: ClassVar[str] = "minsheng.points.task.completed.v1"
    model_config = example(
        task_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0f",
        task_type="meal_delivery",
        rider_id="01936f2e-0000-7000-8000-000000000001",
        origin={"service": "canteen", "kind": "order", "id": "01936f2e-1111-7000-8000-000000000009"},
        completed_at="2026-11-27T11:40:00Z",
        points=5,
    )

    task_id: UUID
    task_type: str
    rider_id: UUID
    origin: Origin | None = None
    completed_at: datetime
    points: int = Field(ge=0)


@contract
class TaskClaimed(TaskEvent):
    """A rider took a governance task (e.g. a meal delivery is on its way). No rider personal data: the
    requesting service gets the task id and the time, and the rider's points-service id only."""

    event_type: ClassVar[str] = "minsheng.points.task.claimed.v1"
    model_config = example(
        task_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0f",
        task_type="meal_delivery",
        rider_id="01936f2e-0000-7000-8000-000000000001",
        origin={"service": "canteen", "kind": "order", "id": "01936f2e-1111-7000-8000-000000000009"},
        claimed_at="2026-11-27T11:10:00Z",
    )

    task_id: UUID
    task_type: str
    rider_id: UUID
    origin: Origin | None = None
    claimed_at: datetime


class LedgerEvent(IntegrationEvent):
    """A change to one rider's points (topic ``points.ledger``, keyed by the rider)."""

    topic: ClassVar[str] = "points.ledger"
    key_field: ClassVar[str] = "rider_id"


@contract
class RiderAccountLinked(LedgerEvent):
    """A rider registered: their app account (``account_id``, the JWT ``sub`` they registered with) is the
    points rider ``rider_id``. On the ledger topic, keyed by the rider, so a consumer sees it before any of
    the rider's entries; notify keeps it as its ``points.rider`` link (the ledger's events name only the rider
    id). Published by points, which makes the link (identity's topic has one writer, identity)."""

    event_type: ClassVar[str] = "minsheng.points.ledger.account_linked.v1"
    model_config = example(
        rider_id="01936f2e-0000-7000-8000-000000000001",
        account_id="01936f2e-1d00-7000-8000-000000000001",
        linked_at="2026-11-27T09:00:00Z",
    )

    rider_id: UUID
    account_id: str = Field(max_length=200)
    linked_at: datetime


@contract
class PointsPosted(LedgerEvent):
    """A ledger entry was appended for a rider (earned, reversed, redeemed, voided, expired, adjusted)."""

    event_type: ClassVar[str] = "minsheng.points.ledger.posted.v1"
    model_config = example(
        entry_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d10",
        rider_id="01936f2e-0000-7000-8000-000000000001",
        kind="earned",
        amount=20,
        balance_after=120,
        cause_type="hazard_report",
        cause_id="01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0e",
        posted_at="2026-11-27T10:00:00Z",
    )

    entry_id: UUID
    rider_id: UUID
    kind: Literal["earned", "reversed", "redeemed", "voided", "expired", "adjusted"]
    amount: int
    balance_after: int
    cause_type: str
    cause_id: str
    posted_at: datetime


@contract
class PointsExpiring(LedgerEvent):
    """A rider has unspent points that will expire within the warning window (``expiry_warning_days``): told
    once per rider and local month, so they can redeem them in time."""

    event_type: ClassVar[str] = "minsheng.points.ledger.expiring.v1"
    model_config = example(
        rider_id="01936f2e-0000-7000-8000-000000000001",
        points=40,
        balance=120,
        expiring_before="2026-12-31T16:00:00Z",
        warned_at="2026-12-01T02:00:00Z",
    )

    rider_id: UUID
    points: int
    balance: int
    expiring_before: datetime
    warned_at: datetime
