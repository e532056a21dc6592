"""The personal data a record of a person carries (PIPL): the phone (masked, sealed, keyed hash), the ID number
(sealed, keyed hash, masked) and health notes (sealed). Visits' residents and canteen's diners carry these
columns (``PersonalData``); the retention purges find and clear them here, so both clear the same set and
report it alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, select

from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from minsheng.platform.uow import UnitOfWork


class PersonalData(SQLModel):
    """The personal-data columns, mixed into a table model of a person (sealed with ``SealedColumns``)."""

    phone: str | None = Field(default=None, max_length=20)  # masked only
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)  # AES-GCM + AAD
    phone_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    id_number_enc: str | None = Field(default=None, max_length=200)
    id_number_hash: str | None = Field(default=None, max_length=64, index=True)  # keyed
    id_number_masked: str | None = Field(default=None, max_length=20)
    health_notes_enc: str | None = Field(default=None, sa_type=sa.Text)


PHONE = ("phone", "phone_enc", "phone_hash")
ID_NUMBER = ("id_number_enc", "id_number_hash", "id_number_masked")
HEALTH_NOTES = ("health_notes_enc",)
_GROUPS = {"phone": PHONE, "id_number": ID_NUMBER, "health_notes": HEALTH_NOTES}


def holds_personal_data(model: type[Any]) -> sa.ColumnElement[bool]:
    """A WHERE clause: the row still has something to clear (so that a purge picks only those: idempotent)."""
    return sa.or_(*(getattr(model, column).is_not(None) for group in _GROUPS.values() for column in group))


def held_fields(row: Any) -> list[str]:
    """Which kinds of personal data the row holds, as written to its audit trail."""
    return [name for name, group in _GROUPS.items() if any(getattr(row, c) is not None for c in group)]


def clear_personal_data(row: Any) -> list[str]:
    """Clear every personal-data column of the row; returns what it held."""
    held = held_fields(row)
    for group in _GROUPS.values():
        for column in group:
            setattr(row, column, None)
    return held


@dataclass(frozen=True)
class RetentionCutoff:
    """How long personal data is kept after a person has gone, as the day and the instant before which a
    departure is old enough to purge (a status carries a day, a row's timestamps an instant)."""

    days: int
    day: date
    at: datetime

    @classmethod
    def keeping(cls, days: int, *, today: date, now: datetime) -> RetentionCutoff:
        return cls(days=days, day=today - timedelta(days=days), at=now - timedelta(days=days))


async def purge_personal_data(
    uow: UnitOfWork,
    model: type[SQLModel],
    expired: Sequence[sa.ColumnElement[bool]],
    *,
    limit: int,
    audit: Callable[[Any, list[str], datetime], SQLModel],
) -> int:
    """Clear the personal data of up to ``limit`` rows of ``model`` that match ``expired`` and still hold some,
    adding ``audit(row, fields_cleared, at)`` for each (called before the row's ``updated_at`` moves); returns
    how many. Idempotent (a cleared row no longer matches) and safe in several replicas: on PostgreSQL the rows
    are claimed with ``FOR UPDATE SKIP LOCKED``, so each is purged and audited once. The caller commits."""
    query = select(model).where(*expired, holds_personal_data(model))
    query = query.order_by(*table_of(model).primary_key).limit(limit)
    if uow.db.is_postgres:
        query = query.with_for_update(of=model, skip_locked=True)  # type: ignore[arg-type]
    purged = 0
    at = utcnow()
    for row in (await uow.session.execute(query)).scalars():
        fields = clear_personal_data(row)
        uow.session.add(audit(row, fields, at))
        row.updated_at = at
        purged += 1
    await uow.session.flush()
    return purged
