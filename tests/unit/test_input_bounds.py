"""Every text input of every service is bounded (issue 13): a string query/path/header parameter or string body
property without ``maxLength`` is a field a client can fill with megabytes, or with more than its database
column holds (a DB error, a 500, where a 422 is due). The services take free text as
``minsheng.platform.inputs.text(n)``, cursors as ``Cursor``; this walks the published OpenAPI documents so
that a new unbounded input fails here instead of creeping in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from minsheng.runner import build_app
from tests.conftest import embedded_settings
from tests.unit.test_openapi_client import operations, service_apps

# Strings that are not text a client makes up: an identifier or a time the schema already constrains.
BOUNDED_FORMATS = {"uuid", "date-time", "date", "time", "binary"}  # binary: a multipart upload, a file


def bounded_pattern(pattern: str) -> bool:
    """A pattern anchored at both ends whose matches have a finite maximum length (``^\\d{4}-\\d{2}$``)."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    _, longest = re._parser.parse(pattern).getwidth()  # type: ignore[attr-defined]
    return bool(longest < 10_000)


def unbounded(schema: dict[str, Any], components: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """The places under ``schema`` that take a string of any length."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return unbounded(components[name], components, where, seen | {name})
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key, [])
        if any(b.get("type") == "number" and "maximum" in b for b in branches):
            # pydantic's Decimal: a number, or the same number as a string ("8.00"); the number's bounds apply.
            branches = [b for b in branches if b != {"type": "string"}]
        for branch in branches:
            found += unbounded(branch, components, where, seen)
    if schema.get("type") == "string" and not (
        "maxLength" in schema
        or "enum" in schema
        or "const" in schema
        or schema.get("format") in BOUNDED_FORMATS
        or bounded_pattern(schema.get("pattern", ""))
    ):
        found.append(where)
    if isinstance(schema.get("items"), dict):
        found += unbounded(schema["items"], components, f"{where}[]", seen)
    for name, prop in schema.get("properties", {}).items():
        found += unbounded(prop, components, f"{where}.{name}", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += unbounded(schema["additionalProperties"], components, f"{where}.*", seen)
    return found


def unbounded_inputs(document: dict[str, Any]) -> list[str]:
    components = document.get("components", {}).get("schemas", {})
    found: list[str] = []
    for path, method, op in operations(document):
        here = f"{method.upper()} {path}"
        for parameter in op.get("parameters", []):
            where = f"{here} {parameter['in']} {parameter['name']}"
            found += unbounded(parameter.get("schema", {}), components, where, set())
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            found += unbounded(content.get("schema", {}), components, f"{here} body({media})", set())
    return found


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    app = build_app(embedded_settings(tmp_path_factory.mktemp("bounds")))
    return {name: sub.openapi() for name, sub in service_apps(app).items()}


def test_every_text_input_has_a_maximum_length(documents: dict[str, dict[str, Any]]) -> None:
    assert set(documents) == {"issues", "points", "visits", "canteen", "identity", "notify"}
    for service, document in sorted(documents.items()):
        assert unbounded_inputs(document) == [], f"{service}: take these as text(n) / Cursor (inputs.py)"


def test_the_walk_finds_what_it_must() -> None:
    components = {
        "Body": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            },
        }
    }
    document = {
        "components": {"schemas": components},
        "paths": {
            "/things": {
                "post": {
                    "parameters": [
                        {"in": "query", "name": "q", "schema": {"type": "string"}},
                        {"in": "query", "name": "month", "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}},
                        {"in": "query", "name": "loose", "schema": {"type": "string", "pattern": r"^\d+$"}},
                        {"in": "query", "name": "id", "schema": {"type": "string", "format": "uuid"}},
                        {"in": "query", "name": "cursor", "schema": {"type": "string", "maxLength": 512}},
                        {"in": "query", "name": "kind", "schema": {"type": "string", "enum": ["a"]}},
                        {
                            "in": "query",
                            "name": "yuan",
                            "schema": {"anyOf": [{"type": "number", "maximum": 9}, {"type": "string"}]},
                        },
                        {"in": "query", "name": "size", "schema": {"anyOf": [{"type": "number"}, {"type": "string"}]}},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}},
                }
            }
        },
    }
    assert unbounded_inputs(document) == [
        "POST /things query q",
        "POST /things query loose",
        "POST /things query size",
        "POST /things body(application/json).title",
        "POST /things body(application/json).tags[]",
    ]


if __name__ == "__main__":  # list what is left: python -m tests.unit.test_input_bounds
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(embedded_settings(Path(tmp)))
        for name, sub in sorted(service_apps(app).items()):
            for line in unbounded_inputs(sub.openapi()):
                print(name, line)
