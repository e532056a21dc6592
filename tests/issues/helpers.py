"""Callers and shortcuts for the issues tests."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.ids import utcnow, uuid7
from tests.support.client import System

# Two points ~40 m apart in the Yuntaiyuan compound, and one ~600 m away.
HERE = {"latitude": 40.0098, "longitude": 112.6983}
NEARBY = {"latitude": 40.00995, "longitude": 112.69865}
FAR = {"latitude": 40.0150, "longitude": 112.6990}

FLOOD = {
    "category": "flooding",
    "description": "雨后小区积水，车库进水",
    "address": "云泰园3号楼",
    "community": "yuntai",
    "compound": "yuntaiyuan",
    "attributes": {"depth": "knee", "indoors": "no"},
    **HERE,
}

# A 1×1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def resident(
    s: System,
    sub: str = "res-jiaona",
    *,
    compound: str = "yuntaiyuan",
    community: str = "yuntai",
    household: str | None = "hh-1",
) -> dict[str, str]:
    scopes = [f"community:{community}", f"compound:{compound}"] + ([f"household:{household}"] if household else [])
    return s.auth("resident", sub=sub, scopes=scopes)


def staff(s: System, sub: str = "staff-yuntai", *scopes: str) -> dict[str, str]:
    return s.auth("staff", sub=sub, scopes=list(scopes) or ["community:yuntai"])


def manager(s: System) -> dict[str, str]:
    return s.auth("staff", sub="county-desk", scopes=["*"])


async def report(
    s: System, headers: dict[str, str], body: dict[str, Any] | None = None, expect: int = 201
) -> dict[str, Any]:
    r = await s.client.post("/issues/issues", headers=headers, json=body or FLOOD)
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


async def act(
    s: System,
    issue_id: str,
    action: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    r = await s.client.post(f"/issues/issues/{issue_id}/{action}", headers=headers, json=body)
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


async def outbox(s: System, service: str = "issues") -> list[dict[str, Any]]:
    """Every event the service wrote to its outbox, oldest first, as (type, data)."""
    db = s.runtime(service).db
    t = db.tables.outbox
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.type, t.c.payload).order_by(t.c.id))).all()
    return [{"type": r.type, **json.loads(r.payload)["data"]} for r in rows]


async def events_of(s: System, event: str, issue_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in await outbox(s)
        if e["type"] == f"minsheng.issues.issue.{event}.v1" and (issue_id is None or e["issue_id"] == issue_id)
    ]


async def update_issue(s: System, issue_id: str, **fields: Any) -> None:
    """Change stored fields directly (e.g. move times into the past)."""
    from uuid import UUID

    from services.issues.models import Issue

    async with s.runtime("issues").uow() as uow:
        issue = await uow.session.get(Issue, UUID(issue_id))
        assert issue is not None
        for name, value in fields.items():
            setattr(issue, name, value)
        await uow.commit()


async def escalate(s: System, need_id: UUID, *, settle: bool = True, **overrides: Any) -> None:
    """A grid worker's need escalated by the visits service, as it would publish it (through its outbox); then,
    embedded, everything delivered (``settle=False`` over a real broker)."""
    data: dict[str, Any] = dict(
        need_id=need_id,
        household_id=uuid7(),
        category="elderly_care",
        title="赵奶奶腿伤行动不便",
        description="80多岁，住云泰园，需要拐杖",
        urgency="high",
        community="yuntai",
        compound="yuntaiyuan",
        address="云泰园5号楼",
        latitude=40.0098,
        longitude=112.6983,
        escalated_by="gw-changhong",
        escalated_at=utcnow(),
    )
    async with s.runtime("visits").uow() as uow:
        uow.emit(NeedEscalated(**{**data, **overrides}))
        await uow.commit()
    if settle:
        await s.settle()
