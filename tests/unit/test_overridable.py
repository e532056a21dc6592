"""A service's policy settings swapped for a test and restored afterwards."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from minsheng.platform.overridable import Overridable


class Policy(BaseModel):
    cap: int = 5
    name: str = "a"


def test_override_changes_only_the_named_fields_and_restores_them() -> None:
    policy = Overridable(Policy())
    with policy.override(cap=7) as changed:
        assert changed == Policy(cap=7) and policy.get() is changed
        with policy.override(name="b"):
            assert policy.get() == Policy(cap=7, name="b")
        assert policy.get() == Policy(cap=7)
    assert policy.get() == Policy()


def test_override_restores_after_an_error() -> None:
    policy = Overridable(Policy())
    with pytest.raises(RuntimeError), policy.override(cap=1):
        raise RuntimeError
    assert policy.get().cap == 5
