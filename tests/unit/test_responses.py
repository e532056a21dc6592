"""The platform's serialise-once answers give the bytes FastAPI gives for the same model (so a view may switch
to them without its clients seeing a difference)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from minsheng.platform.responses import plain_json, validated_json


class Kind(StrEnum):
    a = "a"


class Item(BaseModel):
    id: UUID
    kind: Kind
    at: datetime
    note: str | None = None
    tags: list[str] = Field(default_factory=list)
    name: str = Field(alias="displayName")


ITEM = Item(id=UUID(int=7), kind=Kind.a, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), displayName="水", tags=["x"])


def test_validated_and_plain_json_answer_what_fastapi_answers() -> None:
    app = FastAPI()

    @app.get("/fastapi", response_model=Item)
    async def by_fastapi() -> Item:
        return ITEM

    @app.get("/validated", response_model=Item)
    async def validated() -> object:
        return validated_json(ITEM)

    @app.get("/plain", response_model=Item, status_code=201)
    async def plain() -> object:
        return plain_json(ITEM.model_dump(by_alias=True), status_code=201, headers={"X-A": "1"})

    client = TestClient(app)
    expected = client.get("/fastapi")
    for path in ("/validated", "/plain"):
        got = client.get(path)
        assert got.headers["content-type"] == "application/json"
        assert (
            json.loads(got.content)
            == json.loads(expected.content)
            == {
                "id": "00000000-0000-0000-0000-000000000007",
                "kind": "a",
                "at": "2026-01-02T03:04:05Z",
                "note": None,
                "tags": ["x"],
                "displayName": "水",
            }
        )
    assert client.get("/plain").status_code == 201 and client.get("/plain").headers["x-a"] == "1"
