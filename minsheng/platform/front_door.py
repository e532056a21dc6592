"""The front door of a process that serves the services' HTTP APIs: a pure-ASGI dispatch in front of the root app.

The root app mounts each service's FastAPI app under ``/<service>``. Through Starlette's ``Mount`` a request
crossed two full FastAPI stacks — the root's error, telemetry, body-limit, exception and exit-stack layers and
its router, then the service app's own — although the root's layers never answer a service's request: the
service app has its own error handlers and answers every error itself. The front door sends a request whose
first path segment names a mounted service straight to that app, through the root's own middleware (the request
layer and CORS, built once more around each service app), and everything else — ``/``, ``/healthz``,
``/readyz``, ``/metrics``, unknown prefixes, ``/points`` without its slash, lifespan — to the root's stack as
before.

The scope the service app sees is the one ``Mount`` gives it: the mount's own ``matches`` computes ``root_path``,
``app_root_path`` and ``path_params``, and ``router`` is the root's router (so ``url_for`` resolves through the
mounts, as before). A path the mount's pattern does not match (a newline in it) goes to the root stack, which
answers it as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.middleware import Middleware
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send


class FrontDoor:
    """Dispatches service traffic by its first path segment; the rest goes to ``fallback`` (the root's stack)."""

    def __init__(self, fallback: ASGIApp, router: ASGIApp, mounts: Sequence[Mount], middleware: Sequence[Middleware]):
        self.fallback = fallback
        self.router = router
        self.services: dict[str, tuple[Mount, ASGIApp]] = {}
        for mount in mounts:
            app = mount.app
            for cls, args, kwargs in reversed(middleware):
                app = cls(app, *args, **kwargs)
            self.services[mount.path.removeprefix("/")] = (mount, app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route_path = get_route_path(scope)
            entry = self.services.get(route_path[1:].partition("/")[0]) if route_path else None
            if entry is not None:
                mount, app = entry
                match, child_scope = mount.matches(scope)
                if match is Match.FULL:
                    if "router" not in scope:
                        scope["router"] = self.router
                    scope.update(child_scope)
                    await app(scope, receive, send)
                    return
        await self.fallback(scope, receive, send)


class FrontDoorApp(FastAPI):
    """The root app, with a :class:`FrontDoor` in front of its middleware stack for its one-segment mounts."""

    def build_middleware_stack(self) -> ASGIApp:
        mounts = [
            route
            for route in self.router.routes
            if isinstance(route, Mount) and route.path.count("/") == 1 and route.path != ""
        ]
        return FrontDoor(super().build_middleware_stack(), self.router, mounts, self.user_middleware)
