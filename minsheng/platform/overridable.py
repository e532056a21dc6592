"""A service's own policy settings, read once from the environment and swapped for a test with ``override()``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

S = TypeVar("S", bound=BaseModel)


class Overridable(Generic[S]):
    def __init__(self, current: S) -> None:
        self._current = current

    def get(self) -> S:
        return self._current

    @contextlib.contextmanager
    def override(self, **changes: Any) -> Iterator[S]:
        """Run with some settings changed (tests); the previous ones come back on leaving, even on error."""
        previous = self._current
        self._current = previous.model_copy(update=changes)
        try:
            yield self._current
        finally:
            self._current = previous
