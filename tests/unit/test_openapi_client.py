"""The OpenAPI documents as input for a generated client (issue 18, item 4): readable, stable, unique
operation ids, a tag on every operation, and the errors documented as problem details that match what the
services really answer."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import Mount

from minsheng import SERVICES
from minsheng.platform.errors import PROBLEM_JSON
from minsheng.platform.openapi import HTTP_METHODS, camel_case, install_openapi, operation_id
from minsheng.runner import build_app
from tests.conftest import embedded_settings
from tests.support.client import System

SNAPSHOT = Path(__file__).with_name("operation_ids.json")
CAMEL = re.compile(r"[a-z][A-Za-z0-9]*")


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every service's document, built in-process as clients/typescript/export_openapi.py builds it."""
    app = build_app(embedded_settings(tmp_path_factory.mktemp("openapi")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI only warns on a duplicate operation id: make it fail here
        return {name: sub.openapi() for name, sub in service_apps(app).items()}


def service_apps(app: FastAPI) -> dict[str, FastAPI]:
    return {r.path.strip("/"): r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, FastAPI)}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_every_service_has_a_document(documents: dict[str, dict[str, Any]]) -> None:
    assert sorted(documents) == sorted(SERVICES)


def test_operation_ids_are_unique_camel_case_and_follow_the_function_names(
    documents: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    app = build_app(embedded_settings(tmp_path))
    for service, sub in service_apps(app).items():
        ids = [op["operationId"] for _, _, op in operations(documents[service])]
        assert len(ids) == len(set(ids)), f"{service}: duplicate ids {sorted(i for i in ids if ids.count(i) > 1)}"
        assert [i for i in ids if not CAMEL.fullmatch(i)] == [], service
        names = [r.name for r in iter_route_contexts(sub.routes) if getattr(r, "include_in_schema", False)]
        assert sorted(ids) == sorted(camel_case(n) for n in names if n), service  # derived from the name alone


def test_operation_ids_do_not_depend_on_path_or_method() -> None:
    def route(path: str, method: str) -> APIRoute:
        async def report_issue() -> None: ...

        return APIRoute(path, report_issue, methods=[method])

    assert {operation_id(route("/issues", "POST")), operation_id(route("/v2/reports/{id}", "PUT"))} == {"reportIssue"}


def test_no_published_operation_id_disappears(documents: dict[str, dict[str, Any]]) -> None:
    """Generated clients call operations by these ids: renaming a route function is a breaking change. A
    deliberate one updates tests/unit/operation_ids.json (new operations need no entry)."""
    published = json.loads(SNAPSHOT.read_text())
    for service, ids in published.items():
        current = {op["operationId"] for _, _, op in operations(documents[service])}
        assert sorted(set(ids) - current) == [], f"{service}: operation ids renamed or removed"


def test_every_operation_is_tagged(documents: dict[str, dict[str, Any]]) -> None:
    for service, document in documents.items():
        untagged = [f"{m.upper()} {p}" for p, m, op in operations(document) if not op.get("tags")]
        assert untagged == [], service


def test_errors_are_documented_as_problem_details(documents: dict[str, dict[str, Any]]) -> None:
    issues = documents["issues"]
    get_issue = issues["paths"]["/issues/{issue_id}"]["get"]["responses"]
    assert {"401", "403", "404", "422", "503"} <= set(get_issue) and "409" not in get_issue
    for status in ("401", "404", "422"):
        content = get_issue[status]["content"]
        assert list(content) == [PROBLEM_JSON]
        assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    upload = issues["paths"]["/photos"]["post"]["responses"]
    assert {"400", "401", "409", "413", "415", "422", "503"} <= set(upload)
    assert "Retry-After" in upload["503"]["headers"]
    login = documents["identity"]["paths"]["/wechat/login"]["post"]["responses"]
    assert "401" not in login and "422" in login  # anonymous
    for service, document in documents.items():
        assert "Problem" in document["components"]["schemas"], service
        for path, method, op in operations(document):
            if "open311" in path or "health" in op["tags"]:
                continue
            assert "503" in op["responses"], f"{service} {method} {path}"
            assert "HTTPValidationError" not in json.dumps(op), f"{service} {method} {path}: FastAPI's 422 left"


def test_open311_keeps_its_own_error_format(documents: dict[str, dict[str, Any]]) -> None:
    for path, _, op in operations(documents["issues"]):
        if path.startswith("/open311/"):
            assert "components/schemas/Problem" not in json.dumps(op), path


def test_every_reference_resolves(documents: dict[str, dict[str, Any]]) -> None:
    for service, document in documents.items():
        schemas = document["components"]["schemas"]
        refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
        assert sorted(refs - set(schemas)) == [], service


async def test_real_problems_validate_against_the_documented_schema(
    system: System, documents: dict[str, dict[str, Any]]
) -> None:
    components = documents["issues"]["components"]
    schema = {**components["schemas"]["Problem"], "components": components}  # its $refs resolve from the root
    me = system.auth("resident", sub="res-problem")
    answers = [
        await system.client.get("/issues/issues/00000000-0000-0000-0000-000000000000", headers=me),  # 404
        await system.client.get("/issues/issues/not-a-uuid", headers=me),  # 422 with errors
        await system.client.get("/issues/issues"),  # 401
        await system.client.post("/issues/photos", headers=me, files={"file": ("a.jpg", b"<html>", "image/jpeg")}),
    ]
    assert [a.status_code for a in answers] == [404, 422, 401, 415]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM_JSON
        jsonschema.validate(answer.json(), schema)


def test_a_declared_code_gets_the_problem_schema_and_a_route_model_is_kept() -> None:
    """A route declares the codes the rules cannot see (a rate-limited sign-in's 429) without a schema; a
    route with its own error model keeps it."""

    class Busy(BaseModel):
        queue: int

    app = FastAPI(generate_unique_id_function=operation_id)

    @app.post("/sign-in", responses={429: {"description": "Too many sign-ins from your address"}})
    async def sign_in(code: str) -> dict[str, str]:
        return {"code": code}

    @app.get("/queue", responses={503: {"model": Busy, "description": "Busy"}})
    async def queue_status() -> dict[str, int]:
        return {}

    install_openapi(app, tag="demo")
    document = app.openapi()
    sign_in_responses = document["paths"]["/sign-in"]["post"]["responses"]
    assert sign_in_responses["429"]["description"] == "Too many sign-ins from your address"
    assert sign_in_responses["429"]["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in sign_in_responses["429"]["headers"]
    assert set(sign_in_responses) == {"200", "409", "422", "429", "503"}  # anonymous: no 401/403; no path: no 404
    queue = document["paths"]["/queue"]["get"]
    assert queue["operationId"] == "queueStatus" and queue["tags"] == ["demo"]
    assert queue["responses"]["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Busy"}
    assert "422" not in queue["responses"]  # nothing to validate
