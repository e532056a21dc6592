"""``Idempotency-Key`` for writes a client may retry: same key and body → the first response again;
same key with another body → 422. The stored response commits in the same transaction as the effect.

The look-up is built once per table and runs through the unit of work's fast path (``UnitOfWork.fetchrow``:
compiled once, asyncpg inside the unit's transaction on PostgreSQL); the stored response is written at commit
with the outbox row (``UnitOfWork.insert_at_commit``: on PostgreSQL in the same statement). A request without a
key costs no statement and no hashing."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from minsheng.platform.errors import Problem
from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork

IdempotencyKey = Header(
    default=None,
    alias="Idempotency-Key",
    max_length=200,
    description="Retry-safe key: same key + same body returns the first response.",
)


def _plain(value: Any) -> Any:
    """JSON-ready data; a pydantic model dumps itself (what ``jsonable_encoder`` does for one, at half the
    cost)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return jsonable_encoder(value)


class _RenderedJSON(JSONResponse):
    """A JSON response whose body pydantic already serialized (``model_dump_json``: one pass in Rust instead of
    ``model_dump`` and then ``json.dumps``)."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def _response(status: int, payload: Any) -> JSONResponse:
    if isinstance(payload, BaseModel):
        return _RenderedJSON(payload.model_dump_json(by_alias=True).encode(), status_code=status)
    return JSONResponse(_plain(payload), status_code=status)


def request_hash(body: Any) -> str:
    canonical = json.dumps(_plain(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@functools.cache
def _select_stored(t: sa.Table) -> sa.Select[Any]:
    return sa.select(t.c.request_hash, t.c.status_code, t.c.response).where(
        t.c.scope == sa.bindparam("scope", type_=t.c.scope.type), t.c.key == sa.bindparam("key", type_=t.c.key.type)
    )


async def _stored(uow: UnitOfWork, scope: str, key: str) -> Any:
    return await uow.fetchrow(_select_stored(uow.db.tables.idempotency_keys), {"scope": scope, "key": key})


def _replay(row: Any, digest: str) -> JSONResponse:
    if row.request_hash != digest:
        raise Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused with a different request",
            "This key was already used for another request body; use a new key.",
        )
    return JSONResponse(row.response, status_code=row.status_code, headers={"Idempotent-Replayed": "true"})


async def idempotent(
    uow: UnitOfWork,
    *,
    key: str | None,
    scope: str,
    body: Any,
    action: Callable[[], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run ``action`` (which must not commit) once per (scope, key) and commit; replay otherwise.

    ``scope`` names the caller and the operation (e.g. ``merchant:<id>:redeem``) so keys never collide
    across clients."""
    if key is None:
        status, payload = await action()
        try:
            await uow.commit()
        except sa.exc.IntegrityError:
            await uow.rollback()
            raise
        return _response(status, payload)
    digest = request_hash(body)
    row = await _stored(uow, scope, key)
    if row is not None:
        return _replay(row, digest)
    status, payload = await action()
    content = _plain(payload)
    # Written at commit in the outbox row's statement (no round trip of its own). On PostgreSQL a concurrent
    # twin's uncommitted row makes that statement wait, then fail once the twin commits: replayed below.
    uow.insert_at_commit(
        uow.db.tables.idempotency_keys,
        {
            "scope": scope,
            "key": key,
            "request_hash": digest,
            "status_code": status,
            "response": content,
            "created_at": utcnow(),
        },
    )
    try:
        await uow.commit()
    except sa.exc.IntegrityError:
        # A concurrent request with the same key committed first: ours rolls back, theirs is the answer.
        await uow.rollback()
        row = await _stored(uow, scope, key)
        if row is None:
            raise
        return _replay(row, digest)
    return JSONResponse(content, status_code=status)
