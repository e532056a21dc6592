"""The authorization matrix, built from the running services' routes (so it grows with them), on the embedded
mode with the demo data loaded:

- every secured operation without a token → 401 problem;
- every operation whose ``require(...)`` admits certain roles, called with each other role → 403 (or 404);
- every role, scoped to a community / compound / canteen / department where nothing lives ("an outsider"),
  against every list (no object from another scope in it) and every object route filled with a real object
  of another scope (no 2xx: no cross-scope read or write).

Objects that are public by design (published menus, the catalogue, offers, public issues, …) are listed in
PUBLIC_READS with the reason; everything else that carries a scope must stay inside it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import schemathesis
from hypothesis import Phase, given

from minsheng.platform.auth import Role
from tests.support.client import System
from tests.support.reliability import hazard, record, reproducible, rider_body
from tests.support.routes import Operation, operations

GENERATED_BODIES = 3  # per stopped write × role
OUTSIDER_SCOPES = [
    "community:nowhere",
    "compound:nowhere",
    "canteen:00000000-0000-7000-8000-000000000000",
    "department:nowhere",
    "merchant:00000000-0000-7000-8000-000000000000",
]
# Fields that place an object in a scope (a community, a compound, a canteen, a rider's or merchant's own).
SCOPE_FIELDS = (
    "community",
    "compound",
    "canteen_id",
    "department",
    "rider_id",
    "merchant_id",
    "household_id",
    "resident_id",
    "diner_id",
    "reporter",
)
# Operations anyone may call without a token, and why.
PUBLIC_OPERATIONS = re.compile(
    r"^(GET|HEAD) /\w+/(healthz|readyz)$"  # probes
    r"|^GET /\w+/config$"  # what a client reads before signing in: languages, limits, categories (docs/clients.md)
    r"|^\w+ /issues/open311/"  # Open311 GeoReport v2: public reads; writes carry an api_key of their own
    r"|^\w+ /points/merchant-api/"  # merchants sign requests with their API key (HMAC), not a JWT
    # A photo and its thumbnail (a redirect to a short-lived signed URL): the unguessable id is the capability,
    # so <img> tags work. The local store's signed URLs are checked by their signature.
    r"|^GET /(issues|points|visits)/photos/\{photo_id\}(/thumb)?$"
    r"|^GET /identity/\.well-known/"  # the public keys and the discovery document
    # signing in: a WeChat code, a refresh token, or a user name + password (+ TOTP) is the credential
    r"|^POST /identity/(wechat/login|refresh|staff/login|staff/password|staff/totp/setup|staff/totp/confirm)$"
)
# Collections readable beyond their scope by design (a role → path pattern), with the reason.
PUBLIC_READS: list[tuple[str, re.Pattern[str], str]] = [
    ("*", re.compile(r"^/issues/catalogue/"), "the published catalogue of matters: a manual residents can read"),
    ("*", re.compile(r"^/issues/(open311/|figures)"), "Open311 and the public figures are public"),
    ("*", re.compile(r"^/points/(offers|leaderboards|task-types|teams)"), "offers, leaderboards, task list"),
    ("*", re.compile(r"^/canteen/(canteens|menus)"), "canteens and their published menus are public"),
]


def _public_read(role: str, path: str) -> bool:
    return any((r == "*" or r == role) and p.search(path) for r, p, _ in PUBLIC_READS)


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return [i for i in body["items"] if isinstance(i, dict)]
    if isinstance(body, list):
        return [i for i in body if isinstance(i, dict)]
    return []


def _scoped(item: dict[str, Any]) -> bool:
    """Carries a scope and is not public by its own flag."""
    if item.get("is_public") is True or item.get("visibility") == "public" or item.get("public") is True:
        return False
    return any(item.get(f) not in (None, "", []) for f in SCOPE_FIELDS)


def _ident(item: dict[str, Any], param: str) -> str | None:
    for key in (param, "id", "code", "ref"):
        value = item.get(key)
        if isinstance(value, str | int) and value != "":
            return str(value)
    return None


async def test_authorization_matrix(demo_system: System) -> None:
    s = demo_system
    documents = {name: (await s.client.get(f"/{name}/openapi.json")).json() for name in s.app.state.runtimes}
    ops = operations(s.app, documents)
    roles = [r.value for r in Role if r is not Role.admin]
    figures: dict[str, Any] = {"operations": len(ops), "roles": roles}
    assert {op.service for op in ops} == set(s.app.state.runtimes), "every service's routes were found"
    assert len(ops) > 4 * 10
    problems: dict[str, list[str]] = {
        "unauthenticated_not_401": [],
        "unsecured_not_public": [],
        "wrong_role_admitted": [],
        "cross_scope_list_items": [],
        "cross_scope_object_access": [],
    }

    # 1. No token.
    checked = 0
    for op in ops:
        if not op.secured:
            public_read = op.method == "GET" and _public_read("*", op.url_template)
            if not PUBLIC_OPERATIONS.search(op.label) and not public_read:
                problems["unsecured_not_public"].append(op.label)
            continue
        if op.method == "GET" and _public_read("*", op.url_template):
            continue  # readable without a token by design (the token, when sent, only widens what is seen)
        r = await s.client.request(op.method, op.url(), json={} if op.method in ("POST", "PUT", "PATCH") else None)
        checked += 1
        if r.status_code != 401 or not r.headers.get("content-type", "").startswith("application/problem+json"):
            problems["unauthenticated_not_401"].append(f"{op.label} → {r.status_code}")
    figures["unauthenticated_calls"] = checked

    # 2. Every role the route's require(...) does not admit (with a scope covering everything, so only the
    # role can be the reason for a refusal).
    checked = 0
    for op in ops:
        if op.roles is None:
            continue
        for role in roles:
            if Role(role) in op.roles:
                continue
            r = await s.client.request(
                op.method,
                op.url(),
                headers=s.auth(role, sub=f"wrong-{role}"),
                json={} if op.method in ("POST", "PUT", "PATCH") else None,
            )
            checked += 1
            if r.status_code not in (403, 404):
                problems["wrong_role_admitted"].append(f"{role} {op.label} → {r.status_code}")
    figures["wrong_role_calls"] = checked
    figures["operations_with_declared_roles"] = sum(1 for op in ops if op.roles is not None)

    # 3. Outsiders: harvest real objects from every collection — as admin, and as owners of objects only their
    # owner lists (a rider's reports, a resident's private issue) — then look at them from elsewhere.
    admin = s.auth("admin", sub="matrix-admin")
    owners = await _seed_owned_objects(s)
    collections: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        if op.method == "GET" and not op.params and op.secured and not op.path.endswith((".csv", ".html")):
            found: dict[str, dict[str, Any]] = {}
            for headers in (admin, *owners):
                r = await s.client.get(op.url(), headers=headers)
                if r.status_code == 200:
                    found.update({str(i.get("id") or i.get("code")): i for i in _items(r.json()) if _scoped(i)})
            collections[op.url_template] = list(found.values())
    figures["collections_with_scoped_objects"] = sum(1 for v in collections.values() if v)
    figures["scoped_objects_seen"] = sum(len(v) for v in collections.values())

    list_calls = object_calls = refused = not_reached = 0
    stopped: list[tuple[Operation, str, str, str, dict[str, Any]]] = []
    for op in ops:
        admitted = [r for r in roles if op.roles is None or Role(r) in op.roles]
        if op.method == "GET" and op.url_template in collections:
            for role in admitted:
                if _public_read(role, op.url_template):
                    continue
                r = await s.client.get(op.url(), headers=s.auth(role, sub=f"outsider-{role}", scopes=OUTSIDER_SCOPES))
                list_calls += 1
                if r.status_code == 200:
                    leaked = [i for i in _items(r.json()) if _scoped(i)]
                    problems["cross_scope_list_items"] += [
                        f"{role} {op.label}: { ({f: i.get(f) for f in SCOPE_FIELDS if i.get(f)}) }" for i in leaked[:3]
                    ]
        if not op.params:
            continue
        owner = _owner(op, collections)
        if owner is None:
            continue
        collection, items = owner
        param = op.params[0]
        for item in items[:2]:
            ident = _ident(item, param)
            if ident is None:
                continue
            for role in admitted:
                if op.method == "GET" and _public_read(role, op.url_template):
                    continue
                r = await s.client.request(
                    op.method,
                    op.url({param: ident}),
                    headers=s.auth(role, sub=f"outsider-{role}", scopes=OUTSIDER_SCOPES),
                    json={} if op.method in ("POST", "PUT", "PATCH") else None,
                )
                object_calls += 1
                if 200 <= r.status_code < 300:
                    problems["cross_scope_object_access"].append(
                        f"{role} {op.method} {op.url({param: ident})} → {r.status_code} (object of {collection}: "
                        f"{ ({f: item.get(f) for f in SCOPE_FIELDS if item.get(f)}) })"
                    )
                elif r.status_code in (401, 403, 404):
                    refused += 1
                else:
                    not_reached += 1
                    stopped.append((op, role, param, ident, item))

    # Writes that stopped at validation (an empty body) before any scope check: again with bodies generated
    # from the operation's schema, so the request reaches the point where the object is loaded.
    generated = await _with_generated_bodies(s, documents, stopped, problems)
    figures.update(
        {
            "outsider_list_calls": list_calls,
            "outsider_object_calls": object_calls,
            "outsider_object_calls_refused_403_404": refused,
            "outsider_object_calls_stopped_earlier_422_409": not_reached,
            "outsider_writes_retried_with_generated_bodies": generated["calls"],
            "generated_body_outcomes": generated["statuses"],
        }
    )
    figures.update({k: len(v) for k, v in problems.items()})
    record(
        "authorization_matrix",
        {
            **figures,
            "examples": {k: v[:15] for k, v in problems.items() if v},
            "public_reads": [f"{r} {p.pattern}: {why}" for r, p, why in PUBLIC_READS],
        },
    )
    for kind, listed in problems.items():
        assert listed == [], f"{kind}:\n" + "\n".join(listed[:20])


def _owner(op: Operation, collections: dict[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]] | None:
    """The collection an object route's first parameter belongs to: /issues/issues/{issue_id}/verify →
    /issues/issues."""
    prefix = op.url_template.split("{", 1)[0].rstrip("/")
    items = collections.get(prefix)
    return (prefix, items) if items else None


async def _with_generated_bodies(
    s: System,
    documents: dict[str, dict[str, Any]],
    stopped: list[tuple[Operation, str, str, str, dict[str, Any]]],
    problems: dict[str, list[str]],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    schemas = {name: schemathesis.openapi.from_dict(doc) for name, doc in documents.items()}
    operations_by_key: dict[tuple[str, str, str], Any] = {}
    for name, schema in schemas.items():
        for result in schema.get_all_operations():
            o: Any = result.ok()  # type: ignore[union-attr]
            operations_by_key[(name, o.method.upper(), o.path)] = o
    outcome: dict[str, Any] = {"calls": 0, "statuses": {}}

    def send(method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any]) -> int:
        body = {k: kwargs[k] for k in ("json", "data", "params") if kwargs.get(k) is not None}
        request = s.client.request(method, url, headers=headers, **body)
        return int(asyncio.run_coroutine_threadsafe(request, loop).result(60).status_code)

    def attempt(op: Operation, role: str, param: str, ident: str, item: dict[str, Any]) -> None:
        schema_op = operations_by_key.get((op.service, op.method, op.path))
        if schema_op is None:
            return
        headers = s.auth(role, sub=f"outsider-{role}", scopes=OUTSIDER_SCOPES)

        @reproducible(GENERATED_BODIES, phases=[Phase.explicit, Phase.generate])
        @given(case=schema_op.as_strategy())
        def check(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://minsheng.test", headers=headers)
            status = send(
                op.method,
                op.url({**{k: str(v) for k, v in (case.path_parameters or {}).items()}, param: ident}),
                headers,
                kwargs,
            )
            outcome["calls"] += 1
            outcome["statuses"][status] = outcome["statuses"].get(status, 0) + 1
            if 200 <= status < 300:
                problems["cross_scope_object_access"].append(
                    f"{role} {op.method} {op.url({param: ident})} → {status} with a generated body (object: "
                    f"{ ({f: item.get(f) for f in SCOPE_FIELDS if item.get(f)}) })"
                )

        check()

    def run() -> None:
        for entry in stopped:
            attempt(*entry)

    await asyncio.to_thread(run)
    return outcome


async def _seed_owned_objects(s: System) -> list[dict[str, str]]:
    """Objects only their owner lists, and outsiders of the same kind (another registered rider), so an
    outsider is refused for the object's sake, not because the caller is not registered at all."""
    rider = s.auth("rider", sub="matrix-owner-rider", scopes=())
    resident = s.auth("resident", sub="matrix-owner-resident", scopes=())
    for i, headers in enumerate((rider, s.auth("rider", sub="outsider-rider", scopes=OUTSIDER_SCOPES))):
        r = await s.client.post("/points/riders", headers=headers, json=rider_body(900 + i))
        assert r.status_code == 201, r.text
    r = await s.client.post("/points/hazard-reports", headers=rider, json=hazard(900, tag="matrix"))
    assert r.status_code == 201, r.text
    category = (await s.client.get("/issues/open311/v2/services.json")).json()[0]["service_code"]
    r = await s.client.post(
        "/issues/issues",
        headers=resident,
        json={
            "category": category,
            "title": "A private matter",
            "description": "Only mine to see",
            "community": "yunxing",
            "latitude": 40.01,
            "longitude": 112.70,
            "is_public": False,
        },
    )
    assert r.status_code == 201, r.text
    return [rider, resident]
