"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.issues import (
    IssueAccepted,
    IssueAssigned,
    IssueClosedUnresolved,
    IssueConfirmed,
    IssueCreated,
    IssueLinked,
    IssueMerged,
    IssueOverdue,
    IssueRejected,
    IssueReopened,
    IssueResolved,
    IssueVerified,
    VoteClosed,
    VoteOpened,
)
from services.issues.handlers import HANDLERS

PUBLISHES = (IssueCreated, IssueAccepted, IssueAssigned, IssueVerified, IssueResolved, IssueConfirmed,
             IssueRejected, IssueReopened, IssueClosedUnresolved, IssueOverdue, IssueLinked, IssueMerged,
             VoteOpened, VoteClosed)
CONSUMES = tuple(HANDLERS)
