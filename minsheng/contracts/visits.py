"""Events the visits service publishes."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from minsheng.contracts.base import IntegrationEvent, contract, example


class NeedEvent(IntegrationEvent):
    """An event of one need on the ledger (topic ``visits.need``, keyed by the need)."""

    topic: ClassVar[str] = "visits.need"
    key_field: ClassVar[str] = "need_id"


@contract
class NeedEscalated(NeedEvent):
    """A need the community cannot solve on the spot goes to the issues service; when that issue is resolved
    the need closes by itself. Carries no resident's name, phone or ID number."""

    event_type: ClassVar[str] = "minsheng.visits.need.escalated.v1"
    model_config = example(
        need_id="01936f2e-a000-7000-8000-000000000001",
        household_id="01936f2e-a000-7000-8000-0000000000aa",
        category="road",
        title="Broken stair light in building 3",
        description="Elder on floor 5 cannot see the stairs at night",
        urgency="high",
        community="yunxing",
        compound="yuntaiyuan",
        address="Building 3, unit 2",
        latitude=40.0121,
        longitude=112.7011,
        escalated_by="grid-worker-changhong",
        escalated_at="2026-11-27T09:00:00Z",
    )

    need_id: UUID
    household_id: UUID
    category: str
    title: str = Field(max_length=200)
    description: str = Field(max_length=4000)
    urgency: Literal["low", "normal", "high", "urgent"] = "normal"
    community: str
    compound: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    escalated_by: str
    escalated_at: datetime


NeedAction = Literal[
    "raised",
    "started",
    "resolved",
    "confirmed",
    "auto_confirmed",
    "reopened",
    "closed",
    "escalated",
    "closed_by_issue_resolved",
    "closed_by_issue_confirmed",
]


@contract
class NeedProgressed(NeedEvent):
    """A need in the ledger moved: recorded at the door (``raised``), being worked on, resolved, confirmed,
    reopened, closed out (销号: ``confirmed``, ``auto_confirmed``, ``closed``, ``closed_by_issue_*``) or
    escalated. ``resident_id`` is the resident the need is about, when the recorder named one: notify reaches
    them through an account linked to that resident. Carries no name, phone, ID number or description."""

    event_type: ClassVar[str] = "minsheng.visits.need.progressed.v1"
    model_config = example(
        need_id="01936f2e-a000-7000-8000-000000000001",
        household_id="01936f2e-a000-7000-8000-0000000000aa",
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        action="raised",
        status="open",
        category="mobility",
        title="Needs a walking stick",
        community="yunxing",
        compound="yuntaiyuan",
        due_on="2026-11-30",
        occurred_at="2026-11-27T09:00:00Z",
    )

    need_id: UUID
    household_id: UUID
    resident_id: UUID | None = None
    action: NeedAction
    status: str
    category: str
    title: str = Field(max_length=200)
    community: str
    compound: str | None = None
    due_on: date | None = None
    occurred_at: datetime


class ResidentEvent(IntegrationEvent):
    """An event of one resident (topic ``visits.resident``, keyed by the resident)."""

    topic: ClassVar[str] = "visits.resident"
    key_field: ClassVar[str] = "resident_id"


@contract
class ResidentStatusChanged(ResidentEvent):
    """A resident moved away or died (or came back): the canteen stops or resumes subsidies.
    ``id_number_hash`` is a keyed hash (HMAC-SHA256) of the ID number, never the number itself."""

    event_type: ClassVar[str] = "minsheng.visits.resident.status_changed.v1"
    model_config = example(
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        status="deceased",
        effective_date="2026-11-20",
        id_number_hash="9f2c…",
        community="yunxing",
        changed_at="2026-11-27T09:00:00Z",
    )

    resident_id: UUID
    status: Literal["active", "moved", "deceased"]
    effective_date: date
    id_number_hash: str | None = None
    community: str | None = None
    changed_at: datetime


@contract
class WelfareCheckScheduled(IntegrationEvent):
    """A canteen absence alert became a welfare-check task at the diner's door, due by ``due_at`` and assigned
    to the grid worker who covers the household: ``worker_subject`` is their app account (the JWT ``sub`` they
    were registered with), so they can be told at once; None when nobody covers it. Carries no resident's name,
    phone or address (the grid worker opens the task in the app)."""

    event_type: ClassVar[str] = "minsheng.visits.welfare_check.scheduled.v1"
    topic: ClassVar[str] = "visits.visit"
    key_field: ClassVar[str] = "task_id"
    model_config = example(
        task_id="01936f2e-a000-7000-8000-0000000000dd",
        alert_id="01936f2e-c000-7000-8000-000000000001",
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        household_id="01936f2e-a000-7000-8000-0000000000aa",
        community="yuntai",
        compound="yuntaiyuan",
        worker_id="01936f2e-a000-7000-8000-0000000000ee",
        worker_subject="01936f2e-1d00-7000-8000-000000000002",
        days_absent=3,
        last_meal_on="2026-11-24",
        due_at="2026-11-28T09:00:00Z",
        scheduled_at="2026-11-27T09:00:00Z",
    )

    task_id: UUID
    alert_id: UUID
    resident_id: UUID
    household_id: UUID
    community: str
    compound: str
    worker_id: UUID | None = None
    worker_subject: str | None = Field(default=None, max_length=200)
    days_absent: int
    last_meal_on: date
    due_at: datetime
    scheduled_at: datetime


@contract
class WelfareCheckCompleted(IntegrationEvent):
    """A welfare-check visit (e.g. prompted by a canteen absence alert) was made."""

    event_type: ClassVar[str] = "minsheng.visits.welfare_check.completed.v1"
    topic: ClassVar[str] = "visits.visit"
    key_field: ClassVar[str] = "visit_id"
    model_config = example(
        visit_id="01936f2e-a000-7000-8000-0000000000cc",
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        outcome="visited",
        alert_id="01936f2e-c000-7000-8000-000000000001",
        completed_at="2026-11-27T15:00:00Z",
    )

    visit_id: UUID
    resident_id: UUID | None = None
    alert_id: UUID | None = None
    outcome: Literal["visited", "not_home", "refused"]
    completed_at: datetime


@contract
class ResidentAccountLinked(ResidentEvent):
    """A resident's app account (``account_id``, the JWT ``sub``) was linked to their resident record: by the
    door code a grid worker handed over, or by the account's WeChat-verified phone matching the resident's
    phone (keyed hash) once the grid worker of the household confirmed it. Published by visits, which makes
    the link (identity's ``identity.account`` topic has one writer, identity)."""

    event_type: ClassVar[str] = "minsheng.visits.resident.account_linked.v1"
    model_config = example(
        resident_id="01936f2e-a000-7000-8000-0000000000bb",
        account_id="01936f2e-1d00-7000-8000-000000000001",
        method="verified_phone",
        confirmed_by="grid-worker-li",
        linked_at="2026-12-06T09:34:00Z",
    )

    resident_id: UUID
    account_id: str = Field(max_length=200)
    method: Literal["door_code", "verified_phone", "staff"]
    confirmed_by: str | None = Field(default=None, max_length=200)
    linked_at: datetime
