"""Lists walked one item a page (``limit=1``, following ``next_cursor``) give what one page gives, in the same
order: communities, rounds, the due list, the personal-data audit trail, the link requests and a worker's
assignments."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from tests.support.client import System
from tests.visits.helpers import Place, build_place
from tests.visits.test_linking import _phone_verified


async def walk(p: Place, path: str, headers: dict[str, str], items: str = "items", **params: Any) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    while True:
        page = await p.get(path, headers, params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})})
        seen += [x["id"] for x in page[items]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def in_one_page(p: Place, path: str, headers: dict[str, str], items: str = "items", **params: Any) -> list[Any]:
    page = await p.get(path, headers, params=params)
    assert page["next_cursor"] is None
    return [x["id"] for x in page[items]]


async def test_the_lists_walk_page_by_page_to_what_one_page_holds(system: System) -> None:
    p = await build_place(system)
    for code, name in [("yunxing", "云兴社区"), ("yunfeng", "云峰社区")]:
        await p.post("/communities", p.admin, {"code": code, "name": name}, 201)
    for name, starts in [("spring", "2026-03-01"), ("summer", "2026-06-01"), ("also summer", "2026-06-01")]:
        await p.post(
            "/rounds", p.staff, {"name": name, "community": "yuntai", "starts_on": starts, "ends_on": "2026-12-31"}, 201
        )
    await p.household("102", name="李四", birth_date="1940-02-02", care_tags=["living_alone"], phone="13935201102")
    await p.household("103", name="王五", birth_date="1941-02-02", care_tags=["living_alone"], phone="13935201103")

    officer = system.auth("staff", sub="officer-li", scopes=["community:yuntai", "pii:reveal", "pii:audit"])
    for reason in ("subsidy application", "home care referral", "subsidy review"):
        await p.post(f"/residents/{p.zhao_id}/reveal", officer, {"fields": ["phone"], "reason": reason})

    for account in (str(uuid4()), str(uuid4())):
        await _phone_verified(system, account, "13935201101")
        await p.post("/me/link-requests", system.auth("resident", sub=account, scopes=()))

    lists: list[tuple[str, dict[str, str], str, dict[str, Any]]] = [
        ("/communities", p.admin, "items", {}),
        ("/rounds", p.staff, "items", {}),
        ("/due", p.worker, "households", {"within_days": 90}),
        ("/pii-audit", officer, "items", {}),
        ("/link-requests", p.worker, "items", {}),
    ]
    for path, headers, items, params in lists:
        whole = await in_one_page(p, path, headers, items, **params)
        assert len(whole) >= 2, (path, whole)
        assert await walk(p, path, headers, items, **params) == whole, path


async def test_a_workers_assignment_history_comes_a_page_at_a_time(system: System) -> None:
    p = await build_place(system)
    path = f"/grid-workers/{p.worker_id}/assignments"
    [whole_compound] = (await p.get(path, p.staff))["items"]
    await p.post(f"/assignments/{whole_compound['id']}/end", p.staff)
    one_building = await p.post(path, p.staff, {"compound": p.compound, "building_id": p.building_id}, 201)

    first = await p.get(path, p.staff, params={"include_ended": True, "limit": 1})
    assert [a["id"] for a in first["items"]] == [whole_compound["id"]] and first["next_cursor"]
    second = await p.get(path, p.staff, params={"include_ended": True, "limit": 1, "cursor": first["next_cursor"]})
    assert [a["id"] for a in second["items"]] == [one_building["id"]] and second["next_cursor"] is None
    # Oldest first, as in one page; without include_ended only the current place.
    assert await walk(p, path, p.staff, include_ended=True) == await in_one_page(p, path, p.staff, include_ended=True)
    assert await in_one_page(p, path, p.staff) == [one_building["id"]]
