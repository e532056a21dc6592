"""The demo data: a realistic catalogue and history across the 7 communities, loaded idempotently."""

from __future__ import annotations

from services.issues.demo import seed_demo
from services.issues.demo_catalogue import COMMUNITIES
from tests.support.client import System


async def test_demo_seed_is_idempotent_and_covers_the_seven_communities(system: System) -> None:
    rt = system.runtime("issues")
    await seed_demo(rt)
    await seed_demo(rt)  # again: nothing doubles
    admin = system.auth("admin", sub="county")
    items: list[dict] = []
    cursor = None
    while True:
        page = (
            await system.client.get(
                "/issues/issues", headers=admin, params={"limit": 5, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(items) == len({i["id"] for i in items}) == 14
    assert {i["community"] for i in items} == {c[0] for c in COMMUNITIES}
    [flood] = [i for i in items if i["category"] == "flooding"]
    assert flood["status"] == "confirmed" and flood["rating"] == 5
    certs = (await system.client.get("/issues/catalogue/not-handled", params={"kind": "certificate"})).json()
    assert len(certs["items"]) == 8
    [row] = (await system.client.get("/issues/figures")).json()["rows"]
    assert row["handled"] == 14 and 0 < row["completion_rate"] < 1
