"""The personal data a record of a person carries (PIPL): the phone (masked, sealed, keyed hash), the ID number
(sealed, keyed hash, masked) and health notes (sealed). Visits' residents and canteen's diners carry the same
columns; the retention purges find and clear them here, so both clear the same set and report it alike."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

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
