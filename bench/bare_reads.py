"""The read figures' baselines: the *same SQL* the service runs for each read, compiled from the service's own
statement (with the parameters its view binds), for the bare app to run on raw asyncpg.

The suite builds the cases (it knows the principals, the ids, the riders); the bare app decodes the arguments
once at start-up and answers ``GET /bare/read/{name}?i=N`` with ``conn.fetch(sql, *args[N])``, the rows
returned as JSON: what a hand-written FastAPI endpoint doing the same query would cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from minsheng.platform.auth import Principal, Role
from minsheng.platform.fastpath import Plans
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import DEFAULT_LIMIT

_plans = Plans(PGDialect_asyncpg())


def compiled(statement: sa.Executable, param_sets: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The PostgreSQL SQL of ``statement`` (``$n`` placeholders) and, per parameter set, its driver arguments
    (bind processors applied, as the service's fast path sends them), encoded for the bare app's JSON config."""
    plans = [_plans.plan(statement, p) for p in param_sets]
    sqls = {p.sql for p in plans}
    assert len(sqls) == 1, "one SQL text per case (the same list lengths in every parameter set)"
    args = [[encode(a) for a in p.arguments(ps)] for p, ps in zip(plans, param_sets, strict=True)]
    return {"sql": sqls.pop(), "args": args}


def encode(value: Any) -> Any:
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$uuid" in value:
            return UUID(value["$uuid"])
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$date" in value:
            return date.fromisoformat(value["$date"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def issue_list(sub: str, communities: list[str]) -> dict[str, Any]:
    from services.issues.queries import IssueFilters, _list_statement, list_query

    who = Principal(sub=sub, roles=frozenset({Role.staff}), scopes=tuple(f"community:{c}" for c in communities))
    shape, params = list_query(who, IssueFilters(), utcnow())
    params["limit"] = DEFAULT_LIMIT + 1
    return {"db": "issues", **compiled(_list_statement(shape, False), [params])}


def issue_detail(ids: list[str]) -> dict[str, Any]:
    from services.issues.queries import _ISSUE_WITH_TIMELINE

    return {"db": "issues", **compiled(_ISSUE_WITH_TIMELINE, [{"issue_id": UUID(i)} for i in ids])}


def rider_balance(subjects: list[str]) -> dict[str, Any]:
    from services.points import config
    from services.points.ledger import _balance_by_subject, _balance_params

    now = utcnow()
    statement = _balance_by_subject(bool(config.get().expiry_days))
    return {"db": "points", **compiled(statement, [{"subject": s, **_balance_params(now)} for s in subjects])}


def menus_of_the_week(canteen_code: str) -> dict[str, Any]:
    from services.canteen import config
    from services.canteen.menus import _menu_page_statement, week_from

    start, end = week_from(config.today())
    params = {"canteen": canteen_code, "date_from": start, "date_to": end, "limit": DEFAULT_LIMIT + 1}
    return {"db": "canteen", **compiled(_menu_page_statement(False, False, False, False), [params])}
