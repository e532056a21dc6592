"""Events the issues service publishes: ``issues.issue`` keyed by the issue id, ``issues.vote`` by the vote id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from minsheng.contracts.base import IntegrationEvent, Origin, contract, example

Channel = Literal["resident", "staff", "grid_worker", "rider", "patrol", "open311"]

_EXAMPLE: dict[str, Any] = {
    "issue_id": "01936f2e-9000-7000-8000-000000000001",
    "category": "fire",
    "channel": "rider",
    "urgent": True,
    "community": "yunxing",
    "compound": "yuntaiyuan",
    "origin": {"service": "points", "kind": "hazard_report", "id": "01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0e"},
    "occurred_at": "2026-11-27T09:31:00Z",
    "actor": "staff-7",
}


class IssueFact(IntegrationEvent):
    """Fields every issue event carries, so a consumer never has to call back for context."""

    topic: ClassVar[str] = "issues.issue"
    key_field: ClassVar[str] = "issue_id"

    issue_id: UUID
    category: str
    channel: Channel
    urgent: bool = False
    community: str | None = None
    compound: str | None = None
    origin: Origin | None = None  # the other service's object this issue came from, if any
    # Further reports attached to this issue as duplicates (e.g. a second rider's report of the same fire):
    # consumers treat each like ``origin``.
    linked: list[Origin] = []
    occurred_at: datetime
    actor: str | None = None  # who did it (subject of the staff token), None for the system
    # The principal (JWT ``sub``) of whoever reported the issue first, so the notify service can answer them
    # (件件有回音) without calling back. Added in place (optional): older events simply lack it.
    reporter: str | None = None


def _examples(**extra: Any) -> ConfigDict:
    return example(**{**_EXAMPLE, **extra})


@contract
class IssueCreated(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.created.v1"
    model_config = _examples(title="Rubbish bin on fire")
    title: str


@contract
class IssueAccepted(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.accepted.v1"
    model_config = _examples()


class DepartmentName(BaseModel):
    """A department's public names, as the service catalogue holds them when the event is published."""

    model_config = ConfigDict(frozen=True)

    code: str
    name_zh: str
    name_en: str


@contract
class IssueAssigned(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.assigned.v1"
    model_config = _examples(
        departments=["safety"],
        department_names=[
            {"code": "safety", "name_zh": "应急管理和安全生产部", "name_en": "Emergency Management and Safety"}
        ],
        officer="officer-3",
    )
    departments: list[str]
    # The names of ``departments`` (same order), so a consumer can tell a resident who handles their issue
    # without a catalogue of its own. Added in place (optional): older events lack it.
    department_names: list[DepartmentName] = []
    officer: str | None = None


@contract
class IssueVerified(IssueFact):
    """Staff confirmed on site that the reported problem is real (a true report earns a rider's points)."""

    event_type: ClassVar[str] = "minsheng.issues.issue.verified.v1"
    model_config = _examples(note="Seen on site")
    note: str | None = None


@contract
class IssueResolved(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.resolved.v1"
    model_config = _examples(note="Fire put out, bin replaced")
    note: str | None = None


@contract
class IssueConfirmed(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.confirmed.v1"
    model_config = _examples(rating=5, auto=False)
    rating: int | None = None
    auto: bool = False


@contract
class IssueRejected(IssueFact):
    """Not accepted. ``false_report`` marks a report found untrue (a rider earns nothing, points reversed)."""

    event_type: ClassVar[str] = "minsheng.issues.issue.rejected.v1"
    model_config = _examples(reason="Nothing found on site", false_report=True)
    reason: str
    false_report: bool = False
    # Set when the matter is "not ours": where the resident should go instead (the need/report is not void,
    # it belongs elsewhere).
    redirect_to: str | None = None


@contract
class IssueReopened(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.reopened.v1"
    model_config = _examples(reason="Still leaking")
    reason: str | None = None


@contract
class IssueClosedUnresolved(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.closed_unresolved.v1"
    model_config = _examples(reason="Owner refused access")
    reason: str


@contract
class IssueOverdue(IssueFact):
    event_type: ClassVar[str] = "minsheng.issues.issue.overdue.v1"
    model_config = _examples(deadline="first_response", due_at="2026-11-27T09:46:00Z")
    deadline: Literal["first_response", "resolution"]
    due_at: datetime
    escalation_level: int = 1  # 1 = escalated to the sub-district listing


@contract
class IssueLinked(IssueFact):
    """Further reports were attached to this issue (a duplicate report, or another issue merged into it).
    ``attached`` names the newly attached origins; ``linked`` already includes them."""

    event_type: ClassVar[str] = "minsheng.issues.issue.linked.v1"
    model_config = _examples(
        attached=[{"service": "points", "kind": "hazard_report", "id": "01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d11"}],
        linked=[{"service": "points", "kind": "hazard_report", "id": "01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d11"}],
        reason="duplicate",
    )
    attached: list[Origin]
    reason: Literal["duplicate", "merge"] = "duplicate"


@contract
class IssueMerged(IssueFact):
    """Staff merged this issue into another one; everything about it now follows ``into_issue_id`` (whose
    events carry this issue's origin in ``linked``)."""

    event_type: ClassVar[str] = "minsheng.issues.issue.merged.v1"
    model_config = _examples(into_issue_id="01936f2e-9000-7000-8000-000000000002")
    into_issue_id: UUID


@contract
class IssueFollowed(IntegrationEvent):
    """Someone follows an issue from now on: a further reporter of the same problem (a duplicate report
    credits them, ``role`` ``reporter``) or a resident who tapped follow (``follower``). The notify service
    tells followers what the reporter hears. ``subject`` is their principal (JWT ``sub``; ``rider:<id>``
    for a report a rider filed through points); anonymous reporters are not named. When the issue is merged,
    its followers follow the issue it was merged into (``IssueMerged``); nobody stops following (there is no
    unfollow), so there is no unfollowed event."""

    event_type: ClassVar[str] = "minsheng.issues.issue.followed.v1"
    topic: ClassVar[str] = "issues.issue"
    key_field: ClassVar[str] = "issue_id"
    model_config = example(
        issue_id="01936f2e-9000-7000-8000-000000000001",
        subject="01936f2e-1d00-7000-8000-000000000001",
        role="follower",
        occurred_at="2026-11-27T09:40:00Z",
    )

    issue_id: UUID
    subject: str = Field(max_length=200)
    role: Literal["reporter", "follower"]
    occurred_at: datetime


class VoteOptionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    votes: int


class VoteFact(IntegrationEvent):
    """A vote on a community matter (事项投票). Who may vote: the residents (or households) of the community,
    or of the compound when one is named. Voters are never named."""

    topic: ClassVar[str] = "issues.vote"
    key_field: ClassVar[str] = "vote_id"

    vote_id: UUID
    community: str
    compound: str | None = None
    question: str = Field(max_length=300)
    eligibility: Literal["household", "resident"] = "household"
    opens_at: datetime
    closes_at: datetime


_VOTE: dict[str, Any] = {
    "vote_id": "01936f2e-9100-7000-8000-000000000001",
    "community": "yunxing",
    "compound": "yuntaiyuan",
    "question": "Should the compound add electric-bike charging points?",
    "eligibility": "household",
    "opens_at": "2026-12-06T01:00:00Z",
    "closes_at": "2026-12-13T01:00:00Z",
}


@contract
class VoteOpened(VoteFact):
    """A vote opened (at once when created, or at its ``opens_at`` when scheduled)."""

    event_type: ClassVar[str] = "minsheng.issues.vote.opened.v1"
    model_config = example(**_VOTE, options=["Yes", "No"])

    options: list[str] = []


@contract
class VoteClosed(VoteFact):
    """A vote closed (its time ran out, or staff closed it early): the results, now public."""

    event_type: ClassVar[str] = "minsheng.issues.vote.closed.v1"
    model_config = example(
        **_VOTE,
        closed_at="2026-12-13T01:00:00Z",
        early=False,
        turnout=212,
        results=[{"key": "1", "label": "Yes", "votes": 168}, {"key": "2", "label": "No", "votes": 44}],
        outcome="Yes",
    )

    closed_at: datetime
    early: bool = False
    turnout: int = 0
    results: list[VoteOptionResult] = []
    outcome: str | None = None  # the winning option's label; None on a tie or without votes
