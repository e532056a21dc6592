"""Votes on community matters: one vote per household (or resident), enforced by the database; results
published at close; the voter list never public."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from minsheng.platform.ids import utcnow
from minsheng.platform.sql import table_of
from tests.issues.helpers import resident, staff
from tests.support.client import System


def vote_body(**overrides: Any) -> dict[str, Any]:
    return {
        "community": "yuntai",
        "compound": "yuntaiyuan",
        "question": "是否加装电梯？",
        "description": "5号楼加装电梯，费用按楼层分摊",
        "options": ["同意", "不同意", "弃权"],
        "closes_at": (utcnow() + timedelta(days=7)).isoformat(),
        "eligibility": "household",
        **overrides,
    }


async def open_vote(s: System, **overrides: Any) -> dict[str, Any]:
    r = await s.client.post("/issues/votes", headers=staff(s), json=vote_body(**overrides))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_one_vote_per_household_results_only_at_close(issues: System) -> None:
    vote = await open_vote(issues)
    assert vote["status"] == "open" and [o["key"] for o in vote["options"]] == ["1", "2", "3"]
    path = f"/issues/votes/{vote['id']}"
    husband = resident(issues, "res-wang", household="hh-501")
    wife = resident(issues, "res-li", household="hh-501")
    neighbour = resident(issues, "res-zhao", household="hh-502")

    sent = {**husband, "Idempotency-Key": "ballot-1"}
    r = await issues.client.post(f"{path}/ballots", headers=sent, json={"option": "1"})
    assert r.status_code == 201 and r.json() == {"vote_id": vote["id"], "recorded": True, "option": "1"}, r.text
    resent = await issues.client.post(f"{path}/ballots", headers=sent, json={"option": "1"})
    assert (resent.status_code, resent.json()) == (201, r.json())  # the phone lost the answer: replayed
    other = await issues.client.post(f"{path}/ballots", headers=sent, json={"option": "2"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    r = await issues.client.post(f"{path}/ballots", headers=wife, json={"option": "2"})
    assert r.status_code == 409 and r.json()["code"] == "already_voted"
    r = await issues.client.post(f"{path}/ballots", headers=husband, json={"option": "1"})
    assert r.status_code == 409  # a second ballot without the first one's key
    assert (await issues.client.post(f"{path}/ballots", headers=neighbour, json={"option": "1"})).status_code == 201

    seen = (await issues.client.get(path, headers=wife)).json()
    assert seen["you_voted"] is True and seen["your_choice"] is None  # the household voted; not her choice
    assert seen["results_published"] is False and seen["ballots_cast"] is None
    assert all(o["votes"] is None for o in seen["options"])
    live = (await issues.client.get(path, headers=staff(issues))).json()
    assert live["ballots_cast"] == 2 and all(o["votes"] is None for o in live["options"])  # turnout, no results

    closed = (await issues.client.post(f"{path}/close", headers=staff(issues))).json()
    assert closed["status"] == "closed" and closed["results_published"] is True
    assert {o["key"]: o["votes"] for o in closed["options"]} == {"1": 2, "2": 0, "3": 0}
    assert closed["options"][0]["share"] == 1.0 and closed["ballots_cast"] == 2
    public = (await issues.client.get(path, headers=neighbour)).json()
    assert public["options"][0]["votes"] == 2
    assert "voters" not in public and "ballots" not in public  # no voter list anywhere
    assert (await issues.client.get(f"{path}/ballots", headers=staff(issues))).status_code in (404, 405)
    r = await issues.client.post(
        f"{path}/ballots", headers=resident(issues, "res-late", household="hh-503"), json={"option": "1"}
    )
    assert r.status_code == 409 and r.json()["code"] == "vote_not_open"
    again = await issues.client.post(f"{path}/close", headers=staff(issues))
    assert again.status_code == 409 and again.json()["code"] == "vote_closed"
    assert again.json()["current_status"] == "closed"


async def test_eligibility_scope_and_validation(issues: System) -> None:
    vote = await open_vote(issues)
    path = f"/issues/votes/{vote['id']}/ballots"
    other_compound = resident(issues, "res-x", compound="yunheyuan", community="yunhe", household="hh-9")
    r = await issues.client.post(path, headers=other_compound, json={"option": "1"})
    assert r.status_code == 404  # a vote of another compound is not even visible
    same_community = resident(issues, "res-y", compound="other-compound", household="hh-8")
    r = await issues.client.post(path, headers=same_community, json={"option": "1"})
    assert r.status_code == 403 and r.json()["code"] == "not_eligible"
    no_household = resident(issues, "res-z", household=None)
    r = await issues.client.post(path, headers=no_household, json={"option": "1"})
    assert r.status_code == 403 and r.json()["code"] == "household_unknown"
    r = await issues.client.post(path, headers=resident(issues, household="hh-7"), json={"option": "9"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_option"
    r = await issues.client.post(path, headers=staff(issues), json={"option": "1"})
    assert r.status_code == 403

    r = await issues.client.post(
        "/issues/votes", headers=staff(issues, "s-nanjie", "community:nanjie"), json=vote_body()
    )
    assert r.status_code == 403 and r.json()["code"] == "outside_scope"
    r = await issues.client.post("/issues/votes", headers=resident(issues), json=vote_body())
    assert r.status_code == 403
    for bad in (
        {"options": ["同意"]},
        {"options": ["a", "a"]},
        {"closes_at": (utcnow() - timedelta(hours=1)).isoformat()},
    ):
        r = await issues.client.post("/issues/votes", headers=staff(issues), json=vote_body(**bad))
        assert r.status_code == 422, bad

    later = await open_vote(
        issues, opens_at=(utcnow() + timedelta(days=1)).isoformat(), eligibility="resident", compound=None
    )
    assert later["status"] == "scheduled"
    r = await issues.client.post(f"/issues/votes/{later['id']}/ballots", headers=resident(issues), json={"option": "1"})
    assert r.status_code == 409 and r.json()["code"] == "vote_not_open"

    listed = (await issues.client.get("/issues/votes", headers=resident(issues))).json()["items"]
    assert [v["id"] for v in listed] == [later["id"], vote["id"]]
    first = (await issues.client.get("/issues/votes", headers=resident(issues), params={"limit": 1})).json()
    rest = (
        await issues.client.get(
            "/issues/votes", headers=resident(issues), params={"limit": 1, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [v["id"] for v in first["items"] + rest["items"]] == [later["id"], vote["id"]]
    assert (await issues.client.get("/issues/votes", headers=other_compound)).json()["items"] == []
    open_only = (await issues.client.get("/issues/votes", headers=resident(issues), params={"status": "open"})).json()
    assert [v["id"] for v in open_only["items"]] == [vote["id"]]


async def test_one_vote_per_resident(issues: System) -> None:
    vote = await open_vote(issues, eligibility="resident")
    path = f"/issues/votes/{vote['id']}"
    for sub in ("res-wang", "res-li"):  # same household, each votes
        r = await issues.client.post(
            f"{path}/ballots", headers=resident(issues, sub, household="hh-501"), json={"option": "2"}
        )
        assert r.status_code == 201
    r = await issues.client.post(
        f"{path}/ballots", headers=resident(issues, "res-li", household="hh-501"), json={"option": "1"}
    )
    assert r.status_code == 409
    mine = (await issues.client.get(path, headers=resident(issues, "res-li"))).json()
    assert mine["you_voted"] is True and mine["your_choice"] == "2"


async def test_the_vote_list_shows_each_caller_what_each_vote_shows_them(issues: System) -> None:
    household_vote = await open_vote(issues)
    resident_vote = await open_vote(issues, eligibility="resident", question="是否更换路灯？")
    closed_vote = await open_vote(issues, question="是否设立快递柜？")
    untouched = await open_vote(issues, eligibility="resident", question="是否增加停车位？")
    wang = resident(issues, "res-wang", household="hh-501")
    no_household = resident(issues, "res-qian", household=None)
    for vote, option in ((household_vote, "2"), (resident_vote, "1"), (closed_vote, "3")):
        r = await issues.client.post(f"/issues/votes/{vote['id']}/ballots", headers=wang, json={"option": option})
        assert r.status_code == 201, r.text
    await issues.client.post(f"/issues/votes/{closed_vote['id']}/close", headers=staff(issues))
    for who in (wang, no_household, staff(issues)):
        listed = (await issues.client.get("/issues/votes", headers=who)).json()["items"]
        assert len(listed) == 4
        for item in listed:
            assert item == (await issues.client.get(f"/issues/votes/{item['id']}", headers=who)).json()
    mine = {v["id"]: v for v in (await issues.client.get("/issues/votes", headers=wang)).json()["items"]}
    assert mine[household_vote["id"]]["you_voted"] is True and mine[household_vote["id"]]["your_choice"] is None
    assert mine[resident_vote["id"]]["your_choice"] == "1" and mine[untouched["id"]]["you_voted"] is False
    assert mine[closed_vote["id"]]["ballots_cast"] == 1 and mine[resident_vote["id"]]["ballots_cast"] is None
    theirs = {v["id"]: v for v in (await issues.client.get("/issues/votes", headers=no_household)).json()["items"]}
    assert theirs[household_vote["id"]]["you_voted"] is None and theirs[resident_vote["id"]]["you_voted"] is False
    desk = {v["id"]: v for v in (await issues.client.get("/issues/votes", headers=staff(issues))).json()["items"]}
    assert desk[resident_vote["id"]]["ballots_cast"] == 1 and desk[untouched["id"]]["ballots_cast"] == 0


async def test_votes_are_announced_once_when_they_open_and_close(issues: System) -> None:
    from uuid import UUID

    import sqlalchemy as sa

    from services.issues.jobs import announce_due
    from services.issues.models import Vote
    from tests.issues.helpers import outbox

    VOTES: sa.Table = table_of(Vote)

    async def told(kind: str) -> list[dict[str, Any]]:
        return [e for e in await outbox(issues) if e["type"] == f"minsheng.issues.vote.{kind}.v1"]

    now_open = await open_vote(issues)
    later = await open_vote(issues, opens_at=(utcnow() + timedelta(days=1)).isoformat(), compound=None)
    [opened] = await told("opened")  # at once for an open vote; the scheduled one waits
    assert opened["vote_id"] == now_open["id"] and opened["options"] == ["同意", "不同意", "弃权"]
    assert opened["compound"] == "yuntaiyuan" and "description" not in opened
    path = f"/issues/votes/{now_open['id']}"
    voter = resident(issues, "res-wang", household="hh-501")
    assert (await issues.client.post(f"{path}/ballots", headers=voter, json={"option": "2"})).status_code == 201
    assert (await issues.client.post(f"{path}/close", headers=staff(issues))).status_code == 200
    [closed] = await told("closed")
    assert closed["early"] is True and closed["turnout"] == 1 and closed["outcome"] == "不同意"
    assert [(r["label"], r["votes"]) for r in closed["results"]] == [("同意", 0), ("不同意", 1), ("弃权", 0)]
    assert "res-wang" not in str(closed) and "hh-501" not in str(closed)

    runtime = issues.runtime("issues")
    assert await announce_due(runtime) == 0  # nothing due: nothing said twice
    async with runtime.db.engine.begin() as conn:  # the scheduled vote's time comes, then runs out
        await conn.execute(
            sa.update(VOTES).where(VOTES.c.id == UUID(later["id"])).values(opens_at=utcnow() - timedelta(hours=2))
        )
    assert await announce_due(runtime) == 1
    assert [e["vote_id"] for e in await told("opened")] == [now_open["id"], later["id"]]
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.update(VOTES).where(VOTES.c.id == UUID(later["id"])).values(closes_at=utcnow() - timedelta(hours=1))
        )
    assert await announce_due(runtime) == 1 and await announce_due(runtime) == 0
    [_, ran_out] = await told("closed")
    assert ran_out["vote_id"] == later["id"] and ran_out["early"] is False and ran_out["turnout"] == 0
    assert ran_out["outcome"] is None and ran_out["compound"] is None
