"""Field helpers every service's SQLModel tables use: time-ordered UUID keys, UTC times, JSON lists; and
``apply_patch``, a PATCH body's fields set on a row."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic._internal import _fields as _pydantic_fields
from sqlmodel import Field

from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.types import JSONType, UTCDateTime


def uuid_pk() -> Any:
    """A UUIDv7 primary key, generated in Python so events can name the row before it is flushed."""
    return Field(default_factory=uuid7, primary_key=True)


def utc_now() -> Any:
    """A timezone-aware UTC time defaulting to now (created_at, updated_at …)."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


def utc_optional() -> Any:
    """A timezone-aware UTC time, empty until something happens (resolved_at …)."""
    return Field(default=None, sa_type=UTCDateTime)


def json_list() -> Any:
    return Field(default_factory=list, sa_type=JSONType)


def apply_patch(
    row: Any, patch: BaseModel, *, exclude_none: bool = False, exclude: set[str] | None = None
) -> dict[str, Any]:
    """Set on ``row`` the fields the PATCH body ``patch`` sets (with ``exclude_none``, not those it sets to null;
    never those in ``exclude``); returns what was set, for the effects that follow a change of some field."""
    changes = patch.model_dump(exclude_unset=True, exclude_none=exclude_none, exclude=exclude)
    for name, value in changes.items():
        setattr(row, name, value)
    return changes


def _remember_factory_signatures() -> None:
    """SQLModel builds table objects in Python, asking pydantic for each default factory, on every
    construction, whether it takes the validated data: an ``inspect.signature`` each time (~95 us for
    ``list``; a ~570 us ``Issue()`` spent 400 us there). A factory's signature never changes: remember it."""
    original = getattr(_pydantic_fields, "takes_validated_data_argument", None)
    if original is None or getattr(original, "remembers", False):
        return  # another pydantic, or done already
    known: dict[Any, Any] = {}

    def takes_validated_data_argument(factory: Any) -> Any:
        try:
            return known[factory]
        except KeyError:
            answer = known[factory] = original(factory)
            return answer
        except TypeError:  # an unhashable callable
            return original(factory)

    takes_validated_data_argument.remembers = True  # type: ignore[attr-defined]
    _pydantic_fields.takes_validated_data_argument = takes_validated_data_argument  # type: ignore[assignment]


_remember_factory_signatures()
