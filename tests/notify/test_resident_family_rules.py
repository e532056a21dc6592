"""Residents hear about the needs recorded at their door (progress, closure 销号) through the account linked to
their visits record, and about the votes they may take part in (opened, results); families hear that an elder's
delivered meal arrived or was cancelled, or that the subsidy stopped (moved away); riders hear that their
points are about to expire."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from minsheng.contracts.canteen import DeliveryCancelled, OrderDelivered, SubsidySuspended
from minsheng.contracts.identity import AccountCreated
from minsheng.contracts.issues import VoteClosed, VoteOpened, VoteOptionResult
from minsheng.contracts.points import PointsExpiring
from minsheng.contracts.visits import NeedProgressed
from tests.notify.helpers import account, deliver, flush, link, new_sub, received, subscribe
from tests.support.client import System

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def progressed(need_id: UUID, resident_id: UUID | None, action: str, status: str) -> NeedProgressed:
    return NeedProgressed(
        need_id=need_id,
        household_id=uuid4(),
        resident_id=resident_id,
        action=action,
        status=status,
        category="elderly_care",  # type: ignore[arg-type]
        title="腿受伤，需要拐杖",
        community="yuntai",
        compound="yuntaiyuan",
        due_on=date(2026, 12, 9),
        occurred_at=NOW,
    )


async def inbox(s: System, sub: str) -> list[dict[str, Any]]:
    r = await s.client.get("/notify/inbox", headers=s.auth("resident", sub=sub))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_a_need_recorded_at_the_door_its_progress_and_closure_reach_the_resident(notify: System) -> None:
    s = notify
    sub, neighbour, resident_id, need_id = new_sub(), new_sub(), uuid4(), uuid4()
    await account(s, sub, openid="oResident00000000000001")
    await link(s, sub, "visits.resident", resident_id)
    await account(s, neighbour)
    await link(s, neighbour, "visits.resident", uuid4())
    await subscribe(s, sub, "TPL_NEED_PROGRESS")
    await subscribe(s, sub, "TPL_NEED_PROGRESS")  # two taps, two credits
    for action, status in (
        ("raised", "open"),
        ("started", "in_progress"),
        ("resolved", "resolved"),
        ("confirmed", "confirmed"),
    ):
        await deliver(s, progressed(need_id, resident_id, action, status), source="visits")
    await deliver(s, progressed(uuid4(), None, "raised", "open"), source="visits")  # about no one in particular
    await flush(s)
    items = await inbox(s, sub)
    assert [m["rule"] for m in items] == ["need_closed", "need_resolved", "need_progress", "need_recorded"]
    assert items[3]["body"] == "入户走访时记录的诉求“腿受伤，需要拐杖”已登记入台账，预计2026-12-09前办结。"
    assert items[0]["body"] == "您的诉求“腿受伤，需要拐杖”已办结销号，已记入您家的幸福账单。"
    assert items[1]["link"] == f"pages/visits/need/confirm?id={need_id}"
    wechat = received(s, "wechat")  # two credits: two of the three WeChat-bearing messages went (whichever first)
    phrases = [w["data"]["phrase2"]["value"] for w in wechat]
    assert len(phrases) == 2 and set(phrases) <= {"已登记", "待确认", "已销号"}, phrases
    assert all(w["template_id"] == "TPL_NEED_PROGRESS" and w["touser"] == "oResident00000000000001" for w in wechat)
    assert await inbox(s, neighbour) == []


async def test_families_hear_a_delivered_meal_arrived_or_was_cancelled(notify: System) -> None:
    s = notify
    son, daughter, grandson, stranger = new_sub(), new_sub(), new_sub(), new_sub()
    diner_id = uuid4()
    await account(s, son, openid="oSon000000000000000001")
    await subscribe(s, son, "TPL_MEAL_ORDER")
    await account(s, grandson, locale="en")
    await account(s, stranger)
    delivered = OrderDelivered(
        order_id=uuid4(),
        delivered_at=NOW,
        diner_id=diner_id,
        meal_date=date(2026, 12, 6),
        slot="lunch",
        family_subjects=[son, daughter, grandson],
    )
    await deliver(s, delivered, source="canteen", times=2)  # redelivered: one message each
    await deliver(
        s,
        DeliveryCancelled(
            order_id=uuid4(),
            reason="住院",
            cancelled_at=NOW,
            diner_id=diner_id,
            meal_date=date(2026, 12, 7),
            slot="dinner",
            family_subjects=[son],
        ),
        source="canteen",
    )
    await deliver(s, OrderDelivered(order_id=uuid4(), delivered_at=NOW), source="canteen")  # an older producer
    await flush(s)
    mine = await inbox(s, son)
    assert [m["rule"] for m in mine] == ["order_cancelled_family", "order_delivered_family"]
    assert mine[1]["body"] == "您家人2026-12-06的午餐已于2026-12-06 11:00送到家。"
    assert mine[0]["body"] == "您家人2026-12-07的晚餐送餐已取消：住院。"
    # The daughter's login is known only from the event: her inbox has it when she signs in.
    assert [m["rule"] for m in await inbox(s, daughter)] == ["order_delivered_family"]
    [english] = await inbox(s, grandson)
    assert english["body"] == "Your family member's lunch for 2026-12-06 was delivered at 2026-12-06 11:00."
    [wechat] = received(s, "wechat")
    assert wechat["touser"] == "oSon000000000000000001" and wechat["template_id"] == "TPL_MEAL_ORDER"
    assert wechat["data"] == {
        "thing1": {"value": "午餐"},
        "phrase2": {"value": "已送达"},
        "time3": {"value": "2026-12-06 11:00"},
    }
    assert await inbox(s, stranger) == []


async def resident_in(s: System, *scopes: str, roles: tuple[str, ...] = ("resident",)) -> str:
    sub = new_sub()
    await deliver(
        s,
        AccountCreated(account_id=UUID(sub), occurred_at=NOW, kind="wechat", roles=list(roles), scopes=list(scopes)),
        source="identity",
    )
    return sub


async def test_a_vote_opening_and_its_results_reach_the_residents_who_may_vote(notify: System) -> None:
    s = notify
    in_compound = await resident_in(s, "community:yunxing", "compound:yuntaiyuan", "household:hh-501")
    elsewhere_in_community = await resident_in(s, "community:yunxing", "compound:yunheyuan")
    other_community = await resident_in(s, "community:nanjie", "compound:nanjie-1")
    officer = await resident_in(s, "community:yunxing", "compound:yuntaiyuan", roles=("staff",))
    vote_id = uuid4()
    fact: dict[str, Any] = {
        "vote_id": vote_id,
        "community": "yunxing",
        "compound": "yuntaiyuan",
        "question": "是否加装电梯？",
        "opens_at": NOW,
        "closes_at": datetime(2026, 12, 13, 3, 0, tzinfo=UTC),
    }
    await deliver(s, VoteOpened(**fact, options=["同意", "不同意"]), source="issues", times=2)
    await deliver(
        s,
        VoteClosed(
            **fact,
            closed_at=datetime(2026, 12, 13, 3, 0, tzinfo=UTC),
            turnout=212,
            results=[
                VoteOptionResult(key="1", label="同意", votes=168),
                VoteOptionResult(key="2", label="不同意", votes=44),
            ],
            outcome="同意",
        ),
        source="issues",
    )
    community_wide = {**fact, "vote_id": uuid4(), "compound": None, "question": "垃圾分类时间调整"}
    await deliver(s, VoteOpened(**community_wide), source="issues")
    await flush(s)
    mine = await inbox(s, in_compound)
    assert [m["rule"] for m in mine] == ["vote_opened", "vote_closed", "vote_opened"]
    assert mine[2]["body"] == "事项投票“是否加装电梯？”已开始，2026-12-13 11:00截止，欢迎参与。"
    assert mine[1]["body"] == "事项投票“是否加装电梯？”已结束，共212票：同意 168 票、不同意 44 票。"
    assert mine[0]["body"].startswith("事项投票“垃圾分类时间调整”")
    assert mine[2]["link"] == f"pages/vote/detail?id={vote_id}"
    assert [m["rule"] for m in await inbox(s, elsewhere_in_community)] == ["vote_opened"]  # the community's only
    assert await inbox(s, other_community) == [] and await inbox(s, officer) == []


async def test_a_rider_is_told_their_points_are_about_to_expire(notify: System) -> None:
    s = notify
    sub, rider_id = new_sub(), uuid4()
    await account(s, sub, openid="oRider0000000000000009", roles=("rider",))
    await link(s, sub, "points.rider", rider_id)
    await subscribe(s, sub, "TPL_POINTS")
    await deliver(
        s,
        PointsExpiring(
            rider_id=rider_id,
            points=40,
            balance=120,
            warned_at=NOW,
            expiring_before=datetime(2027, 1, 5, 3, 0, tzinfo=UTC),
        ),
        source="points",
    )
    await deliver(
        s, PointsExpiring(rider_id=uuid4(), points=5, balance=5, warned_at=NOW, expiring_before=NOW), source="points"
    )  # a rider without an account
    await flush(s)
    [message] = await inbox(s, sub)
    assert message["rule"] == "points_expiring" and message["link"] == "pages/points/redeem"
    assert message["body"] == "您有40积分将于2027-01-05 11:00前过期，请及时到爱心商家兑换（当前余额120）。"
    [wechat] = received(s, "wechat")
    assert wechat["data"] == {
        "number1": {"value": "40"},
        "number2": {"value": "120"},
        "thing3": {"value": "积分即将过期"},
    }


async def test_a_family_hears_the_subsidy_stopped_when_the_elder_moved_away(notify: System) -> None:
    s = notify
    son = new_sub()
    await account(s, son)
    fact: dict[str, Any] = {
        "canteen_id": uuid4(),
        "canteen_name": "云兴街幸福食堂",
        "effective_from": date(2026, 12, 1),
        "cancelled_orders": 3,
        "family_subjects": [son],
        "suspended_at": NOW,
    }
    await deliver(s, SubsidySuspended(diner_id=uuid4(), reason="moved", **fact), source="canteen")
    # A death is not announced by a push: the community tells the family in person.
    await deliver(s, SubsidySuspended(diner_id=uuid4(), reason="deceased", **fact), source="canteen")
    await flush(s)
    [message] = await inbox(s, son)
    assert message["rule"] == "subsidy_suspended_family"
    assert message["body"] == (
        "您家人已迁出，云兴街幸福食堂的餐费补贴自2026-12-01起停止，已取消此后的3份订餐；仍可全价就餐。"
    )
