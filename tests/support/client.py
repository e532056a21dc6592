"""Running the whole system in-process for tests, and calling it with tokens."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from minsheng import SERVICES
from minsheng.platform.auth import mint_token
from minsheng.platform.bus.base import EventBus
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.tokens import KeyRing
from minsheng.runner import build_app
from minsheng.settings import Settings


@dataclass
class System:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    bus: EventBus

    def runtime(self, name: str) -> ServiceRuntime:
        return self.app.state.runtimes[name]  # type: ignore[no-any-return]

    def token(self, role: str | Sequence[str], sub: str = "user-1", scopes: Sequence[str] = ("*",)) -> str:
        roles = [role] if isinstance(role, str) else list(role)
        return mint_token(self.app.state.keyring, self.settings, sub, roles, scopes)

    def auth(self, role: str | Sequence[str], sub: str = "user-1", scopes: Sequence[str] = ("*",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, sub, scopes)}"}

    async def settle(self) -> None:
        """Embedded mode: wait until every outbox is empty and the in-process bus has drained.

        Settled means one whole round in which nothing new was published (by this loop or by the services'
        own relays), every queue drained, and no outbox row is left, counted *after* the drain because the
        handlers that ran during it write outbox rows of their own.
        """
        from minsheng.platform.bus.memory import InProcessBus
        from minsheng.platform.outbox import outbox_status

        bus = self.bus
        assert isinstance(bus, InProcessBus)
        for _ in range(100):
            published_before = bus.published
            for name in self.app.state.runtimes:
                await self.runtime(name).relay.publish_pending()
            await bus.drain()
            pending = 0
            for name in self.app.state.runtimes:
                pending += (await outbox_status(self.runtime(name).db)).pending
            if pending == 0 and bus.published == published_before:
                return
        raise AssertionError("the system did not settle")


@contextlib.asynccontextmanager
async def running_system(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    bus: EventBus | None = None,
    demo: bool = False,
    **client_kw: Any,
) -> AsyncIterator[System]:
    # Without the identity service in the process, tokens are signed and verified with a key ring of the test's.
    keyring = None if "identity" in services else KeyRing.ephemeral()
    app = build_app(settings, services, bus=bus, demo=demo, keyring=keyring)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://minsheng.test", **client_kw) as client:
            runtimes = app.state.runtimes
            first = next(iter(runtimes.values()))
            yield System(app=app, client=client, settings=settings, bus=first.bus)
