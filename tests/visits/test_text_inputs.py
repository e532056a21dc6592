"""The visits routes' text parameters refuse a NUL byte themselves (``text(n)``), with the field named.

The request layer (``RefuseNulMiddleware``) answers ``nul_byte`` to any ``%00`` before a route runs; these tests
take it out of the visits app's stack to see what the parameters do behind it: a 422 that names the field,
never a database error (PostgreSQL) or a silent "no match" (SQLite)."""

from __future__ import annotations

from fastapi import FastAPI

from minsheng.platform.inputs import RefuseNulMiddleware
from tests.support.client import System
from tests.unit.test_openapi_client import service_apps
from tests.visits.helpers import build_place

NUL = "a\x00b"

QUERY_TEXT = [
    ("/buildings", "compound"),
    ("/compounds", "community"),
    ("/rounds", "community"),
    ("/grid-workers", "community"),
    ("/due", "compound"),
    ("/households", "community"),
    ("/households", "compound"),
    ("/households", "tier"),
    ("/residents", "community"),
    ("/residents", "compound"),
    ("/tasks", "community"),
    ("/visits", "community"),
    ("/visits", "compound"),
    ("/needs", "owner"),
    ("/needs", "community"),
    ("/needs", "compound"),
    ("/needs", "category"),
    ("/pii-audit", "actor"),
    ("/coverage", "community"),
]


def without_the_request_layer_check(service: FastAPI) -> None:
    guarded = service.user_middleware
    service.user_middleware = [m for m in guarded if m.cls is not RefuseNulMiddleware]
    try:
        service.middleware_stack = service.build_middleware_stack()
    finally:
        service.user_middleware = guarded


def fields_of(answer: dict[str, object]) -> list[object]:
    errors = answer.get("errors")
    assert isinstance(errors, list), answer
    return [e["field"] for e in errors]


async def test_the_request_layer_refuses_a_nul_byte_first(system: System) -> None:
    p = await build_place(system)
    r = await system.client.get("/visits/needs", headers=p.staff, params={"owner": NUL})
    assert r.status_code == 422 and r.json()["code"] == "nul_byte"


async def test_a_nul_byte_in_a_text_parameter_is_a_422_naming_it(system: System) -> None:
    p = await build_place(system)
    without_the_request_layer_check(service_apps(system.app)["visits"])
    for path, field in QUERY_TEXT:
        r = await system.client.get(f"/visits{path}", headers=p.staff, params={field: NUL})
        assert r.status_code == 422, (path, field, r.text)
        assert r.json()["code"] == "validation_error" and fields_of(r.json()) == [f"query.{field}"], (path, r.text)
    r = await system.client.get("/visits/compounds/a%00b", headers=p.staff)
    assert r.status_code == 422 and fields_of(r.json()) == ["path.code"], r.text
