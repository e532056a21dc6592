"""The process of a background role (``minsheng serve <service> --role relay|consumer``): the service's
runtime without its HTTP API, and the three endpoints an orchestrator and Prometheus need — ``/healthz``,
``/readyz`` and ``/metrics``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from minsheng.platform.bus.base import EventBus
from minsheng.platform.metrics import install_metrics
from minsheng.platform.service import ROLE_PARTS, ServiceRuntime


def create_worker_app(runtime: ServiceRuntime, bus: EventBus, *, freeze_gc: bool = False) -> FastAPI:
    role = runtime.role
    if ROLE_PARTS[role].http:
        raise ValueError(f"role {role!r} serves the HTTP API: build it with create_root_app")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await bus.start()
            stack.push_async_callback(bus.stop)
            await runtime.start(migrate=runtime.settings.migrate_on_start)
            stack.push_async_callback(runtime.stop)
            if freeze_gc:
                gc.collect()
                gc.freeze()
            yield

    app = FastAPI(
        title=f"Minsheng {runtime.spec.title} ({role})",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.runtimes = {runtime.name: runtime}
    install_metrics(app, [runtime], bus, mode=runtime.settings.mode)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        body = {"status": "ok", "service": runtime.name, "role": role, "bus": bus.health()}
        if (listener := runtime.outbox_listener) is not None:  # the relay role on PostgreSQL
            body["outbox_listener"] = {
                "listening": listener.listening,
                "connections": listener.connections,
                "notifications": listener.notifications,
            }
        return body

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready = started (the relay running, or the consumers subscribed) and the database answers: both
        roles work from it. The broker stays a health detail, as in the web role: an outage is what the relay
        and the consumers ride out by retrying, and no traffic is routed here anyway."""
        checks = {"database": await runtime.db.ping(), "started": runtime.started}
        ok = all(checks.values())
        return JSONResponse(
            {
                "status": "ready" if ok else "not_ready",
                "service": runtime.name,
                "role": role,
                "checks": checks,
                "bus": bus.health(),
            },
            status_code=200 if ok else 503,
        )

    return app
