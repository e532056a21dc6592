"""A NUL byte past the platform's filter: ``RefuseNulMiddleware`` answers a request with a NUL in its query,
path or body (422 ``nul_byte``) before any route runs; behind it, each text parameter (``text(n)``) refuses
a NUL itself, naming the parameter. A test of that second line lets NUL bytes through the first."""

from __future__ import annotations

from typing import Any

import pytest

from minsheng.platform.inputs import RefuseNulMiddleware


def let_nul_bytes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the test ends, requests with NUL bytes reach the routes."""

    async def pass_through(self: RefuseNulMiddleware, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(RefuseNulMiddleware, "__call__", pass_through)
