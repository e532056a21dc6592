"""What makes each service's OpenAPI document good input for a generated client (clients/typescript):
readable operation ids derived from the route functions, a tag on every operation, and the errors an
operation can answer documented as RFC 9457 problem details.

The errors are added to the generated document, not declared route by route: which ones apply follows from
what the operation is (it takes a token → 401/403, it names a resource in its path → 404, it writes → 409,
it takes a file → 400/413/415, it takes input → 422; every one may meet a database outage → 503). An
operation that declares a code itself (a 429 on a rate-limited sign-in) keeps its description and gets the
problem schema when it gave none. Paths that speak another error format (Open311) are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from minsheng.platform.errors import PROBLEM_JSON

WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
HTTP_METHODS = frozenset({"get", "head", "options", "trace", *WRITE_METHODS})


def operation_id(route: APIRoute) -> str:
    """``report_issue`` → ``reportIssue``: the route function's name in lower camel case. It does not depend
    on the path or the method, so moving a route keeps its id; the function names are unique per service
    (a test checks it), so the ids are too."""
    return camel_case(route.name)


def camel_case(name: str) -> str:
    head, *rest = name.strip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest if part)


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str = Field(description="The input at fault: a dotted path such as `latitude` or `query.limit`")
    message: str
    type: str | None = Field(default=None, description="The kind of error (`missing`, `string_too_long` …)")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details (``application/problem+json``). Branch on ``code``: it is stable and never
    translated; ``title`` and ``detail`` are for people and may change wording or language. Members beyond
    these (``current_status`` …) carry the state a conflict was checked against."""

    model_config = ConfigDict(
        extra="allow",
        title="Problem",
        json_schema_extra={
            "example": {
                "type": "https://minsheng.dev/problems/issue_not_found",
                "title": "Issue not found",
                "status": 404,
                "code": "issue_not_found",
                "detail": "No issue 0b0e… (or it is outside your scope).",
                "instance": "/issues/issues/0b0e…",
                "request_id": "c0ffee…",
            }
        },
    )

    type: str = Field(description="A URI naming the kind of problem: https://minsheng.dev/problems/<code>")
    title: str
    status: int = Field(ge=400, le=599)
    code: str = Field(description="Stable machine-readable code; the one thing a client should branch on")
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path")
    request_id: str | None = Field(default=None, description="Quote it when reporting a problem (X-Request-Id)")
    errors: list[FieldError] | None = Field(default=None, description="The inputs at fault (422)")


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
# status → (description, example code, headers)
ERROR_RESPONSES: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("The body could not be read (a malformed multipart form)", "bad_request", {}),
    401: ("No valid access token: sign in or refresh the token", "unauthenticated", {}),
    403: ("Your role or scope does not allow this", "forbidden_role", {}),
    404: ("Not found, or outside what you may see", "not_found", {}),
    409: ("Conflicts with the current state (reload and retry)", "conflict", {}),
    413: ("The upload is too large", "payload_too_large", {}),
    415: ("The upload is not of an accepted type", "unsupported_media_type", {}),
    422: ("The request is not valid: `errors` names the inputs at fault", "validation_error", {}),
    429: ("Too many requests: wait as `Retry-After` says", "rate_limited", _RETRY_AFTER),
    503: ("Temporarily unavailable (the database is not reachable): retry after a pause", "unavailable", _RETRY_AFTER),
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    text, code, headers = ERROR_RESPONSES.get(status, ("Error", "error", {}))
    example = {"type": f"https://minsheng.dev/problems/{code}", "title": text, "status": status, "code": code}
    response: dict[str, Any] = {
        "description": description or text,
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF, "example": example}},
    }
    if headers:
        response["headers"] = headers
    return response


def applicable_errors(method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, from what it is (see the module's docstring)."""
    params = operation.get("parameters", [])
    body = operation.get("requestBody", {}).get("content", {})
    statuses = [503]
    if operation.get("security"):
        statuses += [401, 403]
    if any(p.get("in") == "path" for p in params):
        statuses.append(404)
    if method in WRITE_METHODS:
        statuses.append(409)
    if any(t.startswith("multipart/") for t in body):
        statuses += [400, 413, 415]
    if params or body:
        statuses.append(422)
    return sorted(statuses)


def complete_document(
    document: dict[str, Any], *, tag: str, skip_paths: Sequence[str] = (), skip_tags: Sequence[str] = ()
) -> None:
    """Tags the untagged operations with ``tag`` (generators group by tags) and adds the problem responses
    and the ``Problem`` schema to a generated document, in place."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS and not operation.get("tags"):
                operation["tags"] = [tag]
        if any(marker in path for marker in skip_paths):
            continue
        for method, operation in item.items():
            if method not in HTTP_METHODS or set(operation.get("tags", ())) & set(skip_tags):
                continue
            responses = operation.setdefault("responses", {})
            for status in applicable_errors(method, operation):
                declared = responses.get(str(status), {})
                if status == 422:  # FastAPI's own 422 (HTTPValidationError) is not what the services answer
                    responses["422"] = problem_response(422)
                elif "content" not in declared:
                    responses[str(status)] = problem_response(status, declared.get("description"))
            for status, declared in responses.items():  # codes a route declared itself, without a schema
                if status[:1] in "45" and "content" not in declared and status.isdigit():
                    responses[status] = problem_response(int(status), declared.get("description"))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _problem_schemas().items():
        schemas[name] = schema
    _drop_unreferenced(schemas, ("HTTPValidationError", "ValidationError"), document)


def _problem_schemas() -> dict[str, Any]:
    schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"Problem": schema, **defs}


def _drop_unreferenced(schemas: dict[str, Any], names: Sequence[str], document: dict[str, Any]) -> None:
    """Removes FastAPI's validation-error schemas (a group referring to each other) once nothing else does."""
    rest = {k: v for k, v in document.items() if k != "components"}
    others = {k: v for k, v in schemas.items() if k not in names}
    if not any(f"#/components/schemas/{name}" in repr((rest, others)) for name in names):
        for name in names:
            schemas.pop(name, None)


def install_openapi(app: FastAPI, *, tag: str, foreign_paths: Sequence[str] = ()) -> None:
    """Replaces ``app.openapi`` by one that tags and documents the errors (cached, as FastAPI's is)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                servers=app.servers,
            )
            complete_document(document, tag=tag, skip_paths=foreign_paths, skip_tags=("health",))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
