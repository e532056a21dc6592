"""Every HTTP operation of the running services, read from the apps themselves: path, method, whether the
OpenAPI document declares a security requirement, and which roles its ``require(...)`` dependency admits
(None when the route decides in its own code). Tests built on it grow with the services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount

from minsheng.platform.auth import Role

PARAM = re.compile(r"{([^}]+)}")


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str  # as in the service's OpenAPI document, e.g. /issues/{issue_id}/verify
    secured: bool
    roles: frozenset[Role] | None

    @property
    def url_template(self) -> str:
        return f"/{self.service}{self.path}"

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def label(self) -> str:
        return f"{self.method} {self.url_template}"

    def url(self, values: dict[str, str] | None = None) -> str:
        values = values or {}
        return "/" + self.service + PARAM.sub(lambda m: values.get(m.group(1)) or placeholder(m.group(1)), self.path)


def placeholder(name: str) -> str:
    """A well-formed value for a path parameter that names no existing object."""
    if name in ("fmt",):
        return "json"
    if "month" in name:
        return "2026-11"
    if "date" in name:
        return date.today().isoformat()
    if name in ("slot",):
        return "lunch"
    if name in ("by",):
        return "points"
    return str(uuid.uuid4())


def _allowed_roles(dependant: Dependant) -> frozenset[Role] | None:
    for dep in dependant.dependencies:
        fn = dep.call
        code = getattr(fn, "__code__", None)
        if code is not None and "allowed" in code.co_freevars and fn.__closure__:  # type: ignore[union-attr]
            cell = fn.__closure__[code.co_freevars.index("allowed")]  # type: ignore[union-attr]
            return frozenset(cell.cell_contents)
        inner = _allowed_roles(dep)
        if inner is not None:
            return inner
    return None


def operations(app: FastAPI, documents: dict[str, dict[str, Any]]) -> list[Operation]:
    ops = []
    for mount in app.routes:
        if not isinstance(mount, Mount) or not isinstance(mount.app, FastAPI):
            continue
        service = mount.path.strip("/")
        paths = documents[service]["paths"]
        for path, methods, dependant in _routes(mount.app.routes):
            for method in sorted(methods):
                doc = paths.get(path, {}).get(method.lower())
                if doc is None or dependant is None:
                    continue
                ops.append(Operation(service, method, path, bool(doc.get("security")), _allowed_roles(dependant)))
    return ops


def _routes(routes: Any) -> Iterator[tuple[str, set[str], Dependant | None]]:
    """(path, methods, dependant) of every API route, through included routers (FastAPI ≥ 0.160 keeps an
    included router as one entry whose effective routes carry the full path and the router's dependencies)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema:
                yield route.path, set(route.methods or ()), route.dependant
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                if getattr(ctx, "include_in_schema", True) and getattr(ctx, "methods", None):
                    yield ctx.path, set(ctx.methods), getattr(ctx, "dependant", None)
