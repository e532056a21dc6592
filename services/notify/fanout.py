"""The rows a unit of work's fan-outs write, gathered and inserted at its commit: one multi-row INSERT each for
the care contacts, the messages and the deliveries, however many events the consumer's batch held.

The rows are written in the ``before_commit`` of the unit's session, in its transaction (with the inbox rows
of the events that caused them), so a crash still leaves all of it or none, and a redelivered event, already
in the inbox, writes nothing. The sender is woken once the transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork
from services.notify import state
from services.notify.models import CareContact, Delivery, DeliveryStatus, Message

_KEY = "notify.fanout"
M, D, C = table_of(Message), table_of(Delivery), table_of(CareContact)


@dataclass
class FanOutRows:
    care_contacts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    causes: set[tuple[str, str, str]] = field(default_factory=set)  # (event, rule, recipient) of the messages
    channels: set[str] = field(default_factory=set)  # of the deliveries written, for the sender's wake-up

    def add_message(self, message: dict[str, Any], deliveries: list[dict[str, Any]]) -> bool:
        """Queue a message and its deliveries; False (nothing queued) when this batch has its cause already,
        so one recipient reached twice by one event (two family members behind one account) gets one."""
        cause = (message["event_id"], message["rule"], message["recipient_key"])
        if cause in self.causes:
            return False
        self.causes.add(cause)
        self.messages.append(message)
        self.deliveries += deliveries
        self.channels.update(d["channel"] for d in deliveries if d["status"] == DeliveryStatus.pending.value)
        return True

    def contacts_of(self, alert_id: str) -> list[dict[str, Any]]:
        """Care contacts queued in this unit (an alert and its outcome in one batch)."""
        return [c for c in self.care_contacts if c["alert_id"] == alert_id]

    def write(self, session: Session) -> None:
        # executemany of one INSERT: SQLAlchemy sends it as multi-row VALUES (insertmanyvalues)
        for table, rows in ((C, self.care_contacts), (M, self.messages), (D, self.deliveries)):
            if rows:
                session.execute(sa.insert(table), rows)
        self.care_contacts, self.messages, self.deliveries = [], [], []
        self.causes.clear()


def rows_of(uow: UnitOfWork) -> FanOutRows:
    """This unit's queued rows (created, with its commit hooks, on first use)."""
    info = uow.session.info
    rows = info.get(_KEY)
    if rows is None:
        rows = info[_KEY] = FanOutRows()
        sync = uow.session.sync_session
        sa_event.listen(sync, "before_commit", rows.write)
        notifier = state.NOTIFIERS.get(uow.db)
        if notifier is not None:  # send as soon as the consumer commits, not at the next poll
            wake = notifier.wake
            sa_event.listen(sync, "after_commit", lambda _: wake(rows.channels), once=True)
    assert isinstance(rows, FanOutRows)
    return rows
