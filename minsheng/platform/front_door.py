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
answers it as before. The scope is set before the request layer and CORS run (they read neither ``root_path`` nor
``route``). An exception the service app lets out (after its own error handler answered 500) reaches the
server as it did through the root's error layer, which re-raised it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette._utils import get_route_path
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, Mount
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


# The APIRoute arguments an included route's effective context carries, already merged with its inclusions
# (prefix, tags, responses, dependencies, defaults).
_ROUTE_ARGUMENTS = tuple(
    name for name in inspect.signature(APIRoute.__init__).parameters if name not in ("self", "path", "endpoint")
)


def flatten_routes(app: FastAPI) -> int:
    """Replace the app's included routers by their routes, each made once with its full path and the arguments
    its inclusions give it: one linear match per request, as FastAPI did before it kept included routers as
    branches (then a request is matched at every level, twice, and each branch recounts the tree's versions —
    34 µs of CPU for a route of the points service, ~150 µs for one of the issues service's). The routes,
    their order, their OpenAPI operations and their handlers are the same. A branch that uses what a flat
    route cannot carry (form limits, low-priority or frontend routes, a non-API route, streaming) is kept.
    Returns how many routes were flattened."""
    flat: list[BaseRoute] = []
    flattened = 0
    for route in app.router.routes:
        contexts = list(route.effective_route_contexts()) if isinstance(route, _IncludedRouter) else None
        if contexts is None or not _flattenable(route, contexts):
            flat.append(route)
            continue
        for context in contexts:
            route_class = cast(type[APIRoute], type(context.original_route))
            arguments = {name: getattr(context, name) for name in _ROUTE_ARGUMENTS if name != "form_limits"}
            flat.append(route_class(context.path, cast(Callable[..., Any], context.endpoint), **arguments))
        flattened += len(contexts)
    app.router.routes[:] = flat
    app.router._mark_routes_changed()
    return flattened


def _flattenable(branch: Any, contexts: list[Any]) -> bool:
    def plain(node: Any) -> bool:
        router = node.original_router
        if node.include_context.form_limits or router.form_limits or router._low_priority_routes:
            return False
        return all(plain(child) for child in router.routes if isinstance(child, _IncludedRouter))

    return plain(branch) and all(
        isinstance(c.original_route, APIRoute) and c.stream_item_type is None and not c.original_route.form_limits
        for c in contexts
    )
