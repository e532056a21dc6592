"""The baselines' server: a bare FastAPI app under the same server settings as ``minsheng serve`` (uvicorn,
one worker, uvloop + httptools, ``log_config=None``, the same log level) — nothing of the platform in the
request path: no middleware, no auth, no unit of work, no ORM.

- ``GET /bare/hello``: the smallest JSON endpoint (context only);
- ``GET /bare/doc/{name}``: returns a stored JSON document — the *same bytes* a service read returns, so a
  read is compared with FastAPI doing only the HTTP and JSON part of it;
- ``POST /bare/{service}/{kind}``: the same body validation, then the same state row(s) + outbox row written
  with raw asyncpg in one transaction (BEGIN, INSERT…, COMMIT on one pooled connection);
  (``/bare/points/redemptions``: redemption + ledger entry + outbox; ``/bare/canteen/orders``: order + outbox,
  for the seeded merchant/offer and menu named in the config's ``redeem`` / ``order`` entries);
- ``GET /bare/read/{name}?i=N``: a read figure's own SQL (compiled from the service's statement, see
  ``bench.bare_reads``) with its N-th argument list, run with raw asyncpg on the service's database, the rows
  returned as JSON (the baseline of the read figures);
- ``GET /bare/sql/{name}``: a named read query done with raw asyncpg, rows returned as JSON (the floor
  for the list/filter endpoints on the large data sets).

Configured by the JSON file named in ``BENCH_BARE_CONFIG``: ``{"docs": {...}, "dbs": {"points": dsn, ...},
"rider_id": "...", "redeem": {...}, "order": {...},
"queries": {name: {"db": "issues", "sql": "...", "params": [...]}},
"reads": {name: {"db": "issues", "sql": "...", "args": [[...], ...]}}, "read_dbs": {"issues": dsn, ...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench.bare_reads import decode
from minsheng.platform.ids import utcnow, uuid7
from services.canteen import models as canteen_models
from services.canteen.models import OrderCreate
from services.canteen.models import metadata as canteen_md
from services.issues import models as issues_models
from services.issues.models import IssueCreate
from services.issues.models import metadata as issues_md
from services.points.models import HazardReport, HazardReportCreate, LedgerEntry, RedeemRequest, Redemption
from services.points.models import metadata as points_md


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, UUID):
        return str(o)
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(type(o).__name__)


def model_row(model: Any, table: sa.Table, **fields: Any) -> dict[str, Any]:
    """Every column of ``table`` for a new row, defaults from the service's own SQLModel class (so the
    baseline writes the same row the service would, and follows the schema as it changes)."""
    allowed = model.model_fields
    obj = model(**{k: v for k, v in fields.items() if k in allowed})
    return {c.name: getattr(obj, c.name) for c in table.columns if hasattr(obj, c.name)}


class RawInsert:
    """``INSERT INTO t (given columns) VALUES ($1…)``, the SQL built once per column set (like any hand-written
    raw-asyncpg code would have it as a constant)."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.jsonb = {c.name for c in table.columns if "JSON" in type(c.type).__name__}
        self._sql: dict[tuple[str, ...], str] = {}

    def args(self, values: dict[str, Any]) -> tuple[str, list[Any]]:
        names = tuple(values)
        sql = self._sql.get(names)
        if sql is None:
            cols = ", ".join(f'"{n}"' for n in names)
            marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
            sql = self._sql[names] = f'INSERT INTO "{self.table.name}" ({cols}) VALUES ({marks})'
        return sql, [json.dumps(v) if n in self.jsonb and not isinstance(v, str) else v for n, v in values.items()]


def outbox_values(*, source: str, event_type: str, topic: str, key: str, data: dict[str, Any]) -> dict[str, Any]:
    event_id = uuid7()
    now = utcnow()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": source,
        "type": event_type,
        "subject": key,
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        "partitionkey": key,
        "correlationid": str(event_id),
    }
    return {
        "id": event_id,
        "topic": topic,
        "key": key,
        "type": event_type,
        "payload": json.dumps(envelope, default=_default, ensure_ascii=False),
        "headers": {"ce_type": event_type, "ce_id": str(event_id), "content-type": "application/cloudevents+json"},
        "created_at": now,
        "attempts": 0,
    }


def create_app(config: dict[str, Any]) -> FastAPI:
    pools: dict[str, asyncpg.Pool] = {}
    docs: dict[str, bytes] = {k: json.dumps(v, ensure_ascii=False).encode() for k, v in config.get("docs", {}).items()}
    doc_objects: dict[str, Any] = config.get("docs", {})
    queries: dict[str, dict[str, Any]] = config.get("queries", {})
    reads: dict[str, tuple[str, str, list[list[Any]]]] = {
        name: (f"read:{r['db']}", r["sql"], [decode(a) for a in r["args"]])
        for name, r in config.get("reads", {}).items()
    }
    rider_id = UUID(config["rider_id"]) if config.get("rider_id") else None
    ins = {
        "hazard_reports": RawInsert(points_md.tables["hazard_reports"]),
        "points_outbox": RawInsert(points_md.tables["outbox"]),
        "issues": RawInsert(issues_md.tables["issues"]),
        "issue_timeline": RawInsert(issues_md.tables["issue_timeline"]),
        "issues_outbox": RawInsert(issues_md.tables["outbox"]),
        "redemptions": RawInsert(points_md.tables["redemptions"]),
        "ledger_entries": RawInsert(points_md.tables["ledger_entries"]),
        "orders": RawInsert(canteen_md.tables["orders"]),
        "canteen_outbox": RawInsert(canteen_md.tables["outbox"]),
    }
    redeem_cfg: dict[str, Any] = config.get("redeem") or {}
    order_cfg: dict[str, Any] = config.get("order") or {}

    async def init(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("jsonb", encoder=lambda v: v, decoder=json.loads, schema="pg_catalog")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for name, dsn in config.get("dbs", {}).items():
            pools[name] = await asyncpg.create_pool(dsn, min_size=2, max_size=config.get("pool_size", 10), init=init)
        for name, dsn in config.get("read_dbs", {}).items():
            pools[f"read:{name}"] = await asyncpg.create_pool(
                dsn, min_size=2, max_size=config.get("pool_size", 10), init=init
            )
        yield
        for pool in pools.values():
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/bare/hello")
    async def hello() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bare/doc/{name}")
    async def doc(name: str) -> Any:
        # A dict returned from a plain endpoint: FastAPI encodes it (jsonable_encoder + JSONResponse).
        return doc_objects[name]

    @app.get("/bare/raw/{name}")
    async def raw(name: str) -> Response:
        # The same bytes with no encoding at all: HTTP only.
        return Response(docs[name], media_type="application/json")

    async def created(
        service: str,
        row: dict[str, Any],
        writes: list[tuple[str, dict[str, Any]]],
        event: tuple[str, str, str, dict[str, Any]],
    ) -> Response:
        """The rows (``(table, values)``) and the event (type, topic, key, data) in the service's outbox, in one
        transaction (as a service's unit of work commits), then ``row``, as 201."""
        event_type, topic, key, data = event
        out = outbox_values(source=f"/services/{service}", event_type=event_type, topic=topic, key=key, data=data)
        async with pools[service].acquire() as conn, conn.transaction():
            for table, values in [*writes, (f"{service}_outbox", out)]:
                sql, args = ins[table].args(values)
                await conn.execute(sql, *args)
        return Response(json.dumps(row, default=_default), status_code=201, media_type="application/json")

    @app.post("/bare/points/hazard-reports", status_code=201)
    async def hazard_report(body: HazardReportCreate) -> Response:
        now = utcnow()
        urgent = body.category in ("fire", "gas_leak", "water_leak")
        row = model_row(
            HazardReport,
            points_md.tables["hazard_reports"],
            **{
                **body.model_dump(),
                "id": uuid7(),
                "rider_id": rider_id,
                "urgent": urgent,
                "created_at": now,
                "updated_at": now,
            },
        )
        event = {
            "report_id": row["id"],
            "rider_id": rider_id,
            "category": body.category,
            "urgent": urgent,
            "description": body.description,
            "latitude": body.latitude,
            "longitude": body.longitude,
            "address": body.address,
            "community": body.community,
            "compound": body.compound,
            "photo_urls": body.photo_urls,
            "reported_at": now,
        }
        return await created(
            "points",
            row,
            [("hazard_reports", row)],
            ("minsheng.points.hazard.reported.v1", "points.hazard", str(row["id"]), event),
        )

    @app.post("/bare/issues/issues", status_code=201)
    async def report_issue(body: IssueCreate) -> Response:
        now = utcnow()
        row = model_row(
            issues_models.Issue,
            issues_md.tables["issues"],
            **{
                **body.model_dump(),
                "title": body.title or body.category,
                "id": uuid7(),
                "channel": "resident",
                "reporter": "resident-1",
                "created_at": now,
                "updated_at": now,
            },
        )
        timeline = model_row(
            issues_models.TimelineEntry,
            issues_md.tables["issue_timeline"],
            id=uuid7(),
            issue_id=row["id"],
            action="submitted",
            actor="resident-1",
            at=now,
        )
        event = {
            "issue_id": row["id"],
            "title": row["title"],
            "category": body.category,
            "channel": "resident",
            "urgent": False,
            "community": body.community,
            "compound": body.compound,
            "occurred_at": now,
            "actor": "resident-1",
        }
        return await created(
            "issues",
            row,
            [("issues", row), ("issue_timeline", timeline)],
            ("minsheng.issues.issue.created.v1", "issues.issue", str(row["id"]), event),
        )

    @app.post("/bare/points/redemptions", status_code=201)
    async def redeem(body: RedeemRequest) -> Response:
        # The redemption row, its ledger entry and the PointsPosted outbox row (the service also consumes the
        # code, debits the balance and checks the offer: those reads and conditional UPDATEs are not here).
        now = utcnow()
        points = redeem_cfg.get("points_cost", 1) * body.quantity
        row = model_row(
            Redemption,
            points_md.tables["redemptions"],
            id=uuid7(),
            merchant_id=UUID(redeem_cfg["merchant_id"]),
            offer_id=body.offer_id,
            rider_id=rider_id,
            quantity=body.quantity,
            points=points,
            status="completed",
            created_at=now,
        )
        entry = model_row(
            LedgerEntry,
            points_md.tables["ledger_entries"],
            id=uuid7(),
            rider_id=rider_id,
            kind="redeemed",
            amount=-points,
            balance_after=0,
            cause_type="redemption",
            cause_id=str(row["id"]),
            note=f"offer ×{body.quantity}",
            created_at=now,
        )
        event = {
            "entry_id": entry["id"],
            "rider_id": rider_id,
            "kind": "redeemed",
            "amount": -points,
            "balance_after": 0,
            "cause_type": "redemption",
            "cause_id": str(row["id"]),
            "posted_at": now,
        }
        return await created(
            "points",
            row,
            [("redemptions", row), ("ledger_entries", entry)],
            ("minsheng.points.ledger.posted.v1", "points.ledger", str(rider_id), event),
        )

    @app.post("/bare/canteen/orders", status_code=201)
    async def order(body: OrderCreate) -> Response:
        # The order row and the DeliveryRequested outbox row (the service also reads the diner, the menu and
        # the subsidy rules and claims the seat with a conditional UPDATE: not here).
        now = utcnow()
        o = order_cfg
        meal_date = datetime.fromisoformat(o["meal_date"]).date()
        deliver_by = datetime.fromisoformat(o["deliver_by"])
        row = model_row(
            canteen_models.Order,
            canteen_md.tables["orders"],
            id=uuid7(),
            canteen_id=UUID(o["canteen_id"]),
            diner_id=body.diner_id,
            menu_id=body.menu_id,
            set_meal_id=body.set_meal_id,
            set_meal_name=o["set_meal_name"],
            meal_date=meal_date,
            slot=o["slot"],
            fulfilment=body.fulfilment.value,
            status="booked",
            channel="staff",
            is_extra=body.extra,
            price_fen=o["price_fen"],
            subsidy_fen=0,
            elder_pays_fen=o["price_fen"],
            payer="diner",
            booked_by="bench-canteen-staff",
            pickup_code=uuid7().hex[-8:],
            community=o["community"],
            dietary=[],
            delivery_address=o["delivery_address"],
            deliver_by=deliver_by,
            note=body.note,
            created_at=now,
            updated_at=now,
        )
        event = {
            "order_id": row["id"],
            "canteen_id": o["canteen_id"],
            "canteen_name": o["canteen_name"],
            "meal_date": o["meal_date"],
            "slot": o["slot"],
            "deliver_by": deliver_by,
            "pickup_address": o["pickup_address"],
            "delivery_address": o["delivery_address"],
            "community": o["community"],
            "compound": None,
            "points": 5,
        }
        return await created(
            "canteen",
            row,
            [("orders", row)],
            ("minsheng.canteen.delivery.requested.v1", "canteen.order", str(row["id"]), event),
        )

    @app.get("/bare/read/{name}")
    async def read(name: str, i: int = 0) -> Response:
        pool, sql, args = reads[name]
        async with pools[pool].acquire() as conn:
            rows = await conn.fetch(sql, *args[i % len(args)])
        return Response(json.dumps({"items": [dict(r) for r in rows]}, default=_default), media_type="application/json")

    @app.get("/bare/sql/{name}")
    async def sql(name: str, request: Request) -> Response:
        q = queries[name]
        params = [request.query_params.get(p) for p in q.get("params", [])]
        async with pools[q["db"]].acquire() as conn:
            rows = await conn.fetch(q["sql"], *params)
        return Response(json.dumps({"items": [dict(r) for r in rows]}, default=_default), media_type="application/json")

    return app


def main() -> None:
    import uvicorn

    from minsheng.platform.observability import configure_logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    with open(os.environ["BENCH_BARE_CONFIG"]) as f:
        config = json.load(f)
    configure_logging(os.environ.get("MINSHENG_LOG_LEVEL", "WARNING"))
    # The same call ``minsheng serve`` makes.
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_config=None, proxy_headers=True)


if __name__ == "__main__":
    main()
