"""Care signals and life events: absence alerts once per spell, and subsidies stopped (and resumed) by the
visits service's resident status changes."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from minsheng.contracts.visits import ResidentStatusChanged, WelfareCheckCompleted
from minsheng.platform.ids import utcnow
from minsheng.platform.privacy import field_cipher
from services.canteen import diners, jobs
from tests.canteen.helpers import (
    TODAY,
    TOMORROW,
    book,
    canteen_staff,
    county,
    deliver,
    make_canteen,
    make_diner,
    make_menu,
    make_rules,
    outbox,
    pin,
    served_history,
)
from tests.support.client import System

ALERT = "minsheng.canteen.diner.absence_alert.v1"
RESIDENT = "01936f2e-a000-7000-8000-0000000000bb"


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


async def scan(s: System) -> dict[str, int]:
    r = await s.client.post("/canteen/care/scan", headers=county(s))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_regular_who_stops_coming_raises_one_alert_per_spell(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"], resident_id=RESIDENT, community="yuntai", compound="yuntaiyuan")
    li = await make_diner(s, c["id"], name="李德明")  # comes now and then: not a regular
    chen = await make_diner(s, c["id"], name="陈玉梅")  # a regular whose family said she is away
    await s.client.patch(
        f"/canteen/diners/{chen['id']}",
        headers=county(s),
        json={"away_from": (TODAY - timedelta(4)).isoformat(), "away_until": (TODAY + timedelta(10)).isoformat()},
    )
    last = TODAY - timedelta(days=4)
    month = days(last - timedelta(days=29), 30)
    await served_history(
        s,
        c["id"],
        [zhao["id"], li["id"], chen["id"]],
        {zhao["id"]: month[4:], li["id"]: month[::2], chen["id"]: month[5:]},
        service_days=days(last, 4),
    )
    assert len(month[4:]) == 26 and len(month[::2]) == 15

    # Three service days missed (the 7th–9th): 赵 is flagged, once, with her resident id for the visit.
    result = await scan(s)
    assert result["raised"] == 1
    [alert] = await outbox(s, ALERT)
    assert alert["diner_id"] == zhao["id"] and alert["resident_id"] == RESIDENT
    assert alert["last_meal_on"] == last.isoformat() and alert["days_absent"] == 3
    assert alert["meals_last_30_days"] == 26 and alert["community"] == "yuntai" and alert["compound"] == "yuntaiyuan"
    assert (await scan(s))["raised"] == 0
    pin(TOMORROW, 8)
    await served_history(s, c["id"], [], {}, service_days=[TODAY])
    assert (await scan(s))["raised"] == 0  # still the same spell
    assert len(await outbox(s, ALERT)) == 1

    listed = (await s.client.get("/canteen/care/alerts", headers=canteen_staff(s))).json()["items"]
    assert [(a["diner_id"], a["status"], a["days_absent"]) for a in listed] == [(zhao["id"], "open", 3)]
    assert (await s.client.get("/canteen/care/alerts", headers=canteen_staff(s, "other"))).json()["items"] == []

    # The welfare check is recorded on the alert; when she eats again the spell is over.
    await deliver(
        s,
        WelfareCheckCompleted(
            visit_id=UUID("01936f2e-a000-7000-8000-0000000000cc"),
            resident_id=UUID(RESIDENT),
            alert_id=UUID(alert["alert_id"]),
            outcome="visited",
            completed_at=utcnow(),
        ),
        source="visits",
    )
    listed = (await s.client.get("/canteen/care/alerts", headers=canteen_staff(s))).json()["items"]
    assert listed[0]["status"] == "checked" and listed[0]["outcome"] == "visited"
    await served_history(s, c["id"], [zhao["id"]], {zhao["id"]: [TODAY]}, service_days=[])
    assert (await scan(s))["resolved"] == 1
    listed = (
        await s.client.get("/canteen/care/alerts", headers=canteen_staff(s), params={"status": "resolved"})
    ).json()["items"]
    assert len(listed) == 1 and listed[0]["resolved_at"]
    # Scans are staff-triggered only at county level (the job runs on its own schedule).
    assert (await s.client.post("/canteen/care/scan", headers=canteen_staff(s))).status_code == 403


async def test_days_the_canteen_is_closed_do_not_count_as_absence(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    zhao = await make_diner(s, c["id"])
    last = TODAY - timedelta(days=4)
    # Open the day after her last meal only, then closed (e.g. a holiday): one missed service day.
    await served_history(
        s,
        c["id"],
        [zhao["id"]],
        {zhao["id"]: days(last - timedelta(days=24), 25)},
        service_days=[last + timedelta(days=1)],
    )
    assert (await scan(s))["raised"] == 0
    await served_history(s, c["id"], [], {}, service_days=[last + timedelta(days=2), last + timedelta(days=3)])
    assert (await scan(s))["raised"] == 1
    # The periodic job is the same scan: nothing new.
    assert (await jobs.scan_absences(s.runtime("canteen"))).raised == 0


async def test_moved_or_deceased_residents_stop_being_subsidised(canteen: System) -> None:
    s = canteen
    c = await make_canteen(s)
    await make_rules(s)
    menus = [await make_menu(s, "yunxing-street", TOMORROW + timedelta(days=i)) for i in range(3)]
    zhao = await make_diner(s, c["id"], delivery_eligible=True, delivery_address="云泰园3号楼")
    # Not linked to a resident yet: found by the keyed hash of her ID number.
    async with s.runtime("canteen").uow() as uow:
        number = (
            await diners.read_sensitive(uow, _staff_principal(), UUID(zhao["id"]), "test", field_cipher(s.settings))
        ).id_number
    id_hash = field_cipher(s.settings).lookup_hash(number)
    booked = [(await book(s, county(s), zhao["id"], m, fulfilment="delivery")).json() for m in menus[:2]]
    assert all(o["subsidy_fen"] == 300 for o in booked)

    moved = ResidentStatusChanged(
        resident_id=UUID(RESIDENT),
        status="moved",
        effective_date=menus[1]["meal_date"],
        id_number_hash=id_hash,
        community="yunxing",
        changed_at=utcnow(),
    )
    await deliver(s, moved, source="visits", times=2)  # redelivered: applied once
    d = (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=county(s))).json()
    assert d["status"] == "suspended" and d["resident_id"] == RESIDENT
    assert d["subsidy_suspended_from"] == menus[1]["meal_date"]
    first = (await s.client.get(f"/canteen/orders/{booked[0]['id']}", headers=county(s))).json()
    second = (await s.client.get(f"/canteen/orders/{booked[1]['id']}", headers=county(s))).json()
    assert first["status"] == "booked" and second["status"] == "cancelled"
    assert second["cancel_reason"] == "resident moved"
    cancellations = await outbox(s, "minsheng.canteen.delivery.cancelled.v1")
    assert [x["order_id"] for x in cancellations] == [booked[1]["id"]]
    # She may still eat, at full price.
    r = await book(s, county(s), zhao["id"], menus[2])
    assert r.status_code == 201 and r.json()["subsidy_fen"] == 0 and r.json()["elder_pays_fen"] == 1000
    await s.client.post(f"/canteen/orders/{r.json()['id']}/cancel", headers=county(s))

    # An older event arriving late changes nothing; coming back resumes the subsidy.
    stale = moved.model_copy(update={"status": "active", "changed_at": utcnow() - timedelta(days=3)})
    await deliver(s, stale, source="visits")
    assert (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=county(s))).json()["status"] == "suspended"
    back = moved.model_copy(update={"status": "active", "changed_at": utcnow(), "effective_date": TOMORROW})
    await deliver(s, back, source="visits")
    d = (await s.client.get(f"/canteen/diners/{zhao['id']}", headers=county(s))).json()
    assert d["status"] == "active" and d["subsidy_suspended_from"] is None
    assert (await book(s, county(s), zhao["id"], menus[2])).json()["subsidy_fen"] == 300

    # Deceased: future bookings cancelled, no new ones.
    await deliver(s, moved.model_copy(update={"status": "deceased", "changed_at": utcnow()}), source="visits")
    r = await book(s, county(s), zhao["id"], menus[2], extra=True)
    assert r.status_code == 409 and r.json()["code"] == "diner_inactive"
    orders = (await s.client.get("/canteen/orders", headers=county(s), params={"diner_id": zhao["id"]})).json()
    assert {o["meal_date"]: o["status"] for o in orders["items"] if o["status"] != "cancelled"} == {
        booked[0]["meal_date"]: "booked"
    }


def _staff_principal():  # type: ignore[no-untyped-def]
    from minsheng.platform.auth import Principal, Role

    return Principal(sub="test", roles=frozenset({Role.admin}), scopes=("*",))


async def test_unrelated_events_are_ignored(canteen: System) -> None:
    s = canteen
    await make_canteen(s)
    pin(TODAY, 9)
    await deliver(
        s,
        ResidentStatusChanged(resident_id=UUID(RESIDENT), status="deceased", effective_date=TODAY, changed_at=utcnow()),
        source="visits",
    )
    await deliver(
        s, WelfareCheckCompleted(visit_id=UUID(RESIDENT), outcome="not_home", completed_at=utcnow()), source="visits"
    )
    assert s.runtime("canteen").consumer.stats.dead_lettered == 0
    assert s.runtime("canteen").consumer.stats.handled == 2
