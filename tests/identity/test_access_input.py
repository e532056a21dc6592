"""The roles and scopes an admin grants are checked whole: a scope is ``*``, ``pii:reveal`` or one
``<kind>:<value>``, with nothing before or after it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.identity.models import AccessUpdate


@pytest.mark.parametrize("scope", ["*", "pii:reveal", "community:yunxing", "compound:yun-tai.yuan_2"])
def test_a_well_formed_scope_is_accepted(scope: str) -> None:
    assert AccessUpdate(roles=["staff"], scopes=[scope], reason="r").scopes == [scope]


@pytest.mark.parametrize(
    "scope",
    ["community:x\n", "community:x *", " community:x", "*\n", "pii:reveal\n", "community:", "c:x", "community:x\n*"],
)
def test_a_scope_with_anything_around_it_is_refused(scope: str) -> None:
    with pytest.raises(ValidationError):
        AccessUpdate(roles=["staff"], scopes=[scope], reason="r")
