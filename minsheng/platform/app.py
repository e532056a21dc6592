"""The app factory: a FastAPI app per service, and the root app that mounts one or all of them (its front door
dispatches service traffic straight into the service's app: ``minsheng.platform.front_door``).

``minsheng run`` mounts all four on one in-process bus; ``minsheng serve <service>`` mounts one on Kafka.
The paths are the same either way (``/points/...``), so the gateway routes without rewriting.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from html import escape
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse

from minsheng.platform.auth import make_verifier
from minsheng.platform.bus.base import EventBus
from minsheng.platform.clientconfig import client_config_router
from minsheng.platform.errors import install_problem_handlers
from minsheng.platform.front_door import FrontDoorApp, flatten_routes
from minsheng.platform.inputs import RefuseNulMiddleware
from minsheng.platform.metrics import install_metrics
from minsheng.platform.openapi import install_openapi, operation_id
from minsheng.platform.service import ServiceRuntime, ServiceSpec, runtime_of
from minsheng.platform.tokens import KeyRing, TokenVerifier
from minsheng.settings import Settings

# Response headers an H5 page's script may read (CORS hides all but a few otherwise): caching, retry advice,
# the language answered in, the id to quote in a bug report, a replayed idempotent write, a download's name.
EXPOSED_HEADERS = (
    "ETag",
    "Retry-After",
    "Content-Language",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Content-Disposition",
    "Location",
    "WWW-Authenticate",
)
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"


def cors_origins(settings: Settings) -> tuple[list[str], str | None]:
    """The exact origins allowed, and a pattern for the embedded mode's default (any local port)."""
    if settings.cors_origins is not None:
        return list(settings.cors_origins), None
    return [], LOCAL_ORIGINS if settings.mode == "embedded" else None


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is up (with the event bus's health as a detail)")
    async def healthz(request: Request) -> dict[str, Any]:
        return {"status": "ok", "bus": runtime_of(request).bus.health()}

    @router.get("/readyz", summary="Readiness: the database answers (a broker outage does not drop traffic)")
    async def readyz(request: Request) -> JSONResponse:
        runtime = runtime_of(request)
        ok = await runtime.db.ping()
        # The bus is shown, not required: writes keep working through the outbox while the broker is away.
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": {"database": ok}, "bus": runtime.bus.health()},
            status_code=200 if ok else 503,
        )

    return router


def create_service_app(runtime: ServiceRuntime, *, migrate: bool = True) -> FastAPI:
    spec = runtime.spec

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start(migrate=migrate)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"Minsheng {spec.title}",
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.runtime = runtime
    install_problem_handlers(app, spec.foreign_error_formats, spec.metadata)
    app.include_router(health_router())
    app.include_router(client_config_router(spec.name, spec.client_config, api_version=app.version))
    app.include_router(spec.router)
    flatten_routes(app)  # one route table per service: a request is matched once, not at every inclusion
    install_openapi(app, tag=spec.name, foreign_paths=[marker for marker, _ in spec.foreign_error_formats])
    app.add_middleware(RefuseNulMiddleware, foreign_formats=spec.foreign_error_formats)
    return app


def create_root_app(
    specs: Sequence[ServiceSpec],
    settings: Settings,
    bus: EventBus,
    *,
    demo: bool = False,
    freeze_gc: bool = False,
    keyring: KeyRing | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """``freeze_gc`` (the server processes): once started, move everything alive out of the cyclic
    collector's sight (``gc.freeze``), so its full collections walk only what requests create — they
    paused requests for 70-230 ms otherwise."""
    keyring = keyring or KeyRing()
    verifier = verifier or make_verifier(keyring, settings)
    runtimes = [ServiceRuntime(spec, settings, bus, keyring=keyring, verifier=verifier) for spec in specs]
    apps = {rt.name: create_service_app(rt, migrate=settings.migrate_on_start) for rt in runtimes}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Mounted apps get no lifespan events of their own: enter each one's here.
        async with AsyncExitStack() as stack:
            await bus.start()
            stack.push_async_callback(bus.stop)
            for sub in apps.values():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            if demo:
                for rt in runtimes:
                    if rt.spec.seed_demo is not None:
                        await rt.spec.seed_demo(rt)
            if freeze_gc:
                gc.collect()
                gc.freeze()
            yield

    # The front door sends /<service>/… straight into the service's app (one stack per request, not two).
    root = FrontDoorApp(title="Minsheng 民生", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    root.state.runtimes = {rt.name: rt for rt in runtimes}
    root.state.keyring = keyring
    origins, origin_regex = cors_origins(settings)
    root.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_origin_regex=origin_regex,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=list(EXPOSED_HEADERS),
        max_age=600,
    )
    # GET /metrics, and the one request layer (request id, trace context, metrics) outside CORS.
    install_metrics(root, runtimes, bus, mode=settings.mode)

    @root.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def landing() -> str:
        items = "".join(
            f'<li><a href="/{n}/docs">{escape(apps[n].title)}</a> — {escape(apps[n].description)} '
            f'(<a href="/{n}/openapi.json">OpenAPI</a>)</li>'
            for n in apps
        )
        return (
            f"<!doctype html><meta charset=utf-8><title>Minsheng 民生</title>"
            f"<h1>Minsheng 民生</h1><p>Services in this process:</p><ul>{items}</ul>"
        )

    @root.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "bus": bus.health()}

    @root.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready = every service started and its database answers. The broker is a health detail, a metric
        (``minsheng_bus_up``) and an alert, never a reason to take the process out of the load balancer."""
        checks = {rt.name: await rt.db.ping() and rt.started for rt in runtimes}
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "services": checks, "bus": bus.health()},
            status_code=200 if ok else 503,
        )

    for name, sub in apps.items():
        root.mount(f"/{name}", sub)
    return root
