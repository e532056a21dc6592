"""Mainland resident ID numbers (GB 11643-1999): 18 characters, the last an ISO 7064 MOD 11-2 check
character; positions 7–14 are the birth date. We validate them, derive the birth date, and never keep them
in clear (see ``FieldCipher``)."""

from __future__ import annotations

from datetime import date

from minsheng.platform.i18n import N_

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_char(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalize(value: str) -> str:
    return value.strip().upper()


def birth_date_of(value: str) -> date | None:
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def problem_with(value: str) -> str | None:
    """Why ``value`` is not a valid 18-character ID number, or None when it is."""
    v = normalize(value)
    if len(v) != 18 or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):
        return N_("must be 18 characters: 17 digits and a digit or X")
    born = birth_date_of(v)
    if born is None or born.year < 1880:
        return N_("positions 7-14 must be a birth date")
    if check_char(v[:17]) != v[17]:
        return N_("the check character does not match")
    return None


def make(region: str, born: date, serial: int) -> str:
    """Build a valid ID number (demo data and tests)."""
    first17 = f"{region}{born:%Y%m%d}{serial % 1000:03d}"
    return first17 + check_char(first17)
