"""The rows of one demo household: its residents (ID numbers and phones sealed as the service stores them),
its visits, its needs — 赵's among them, with the walking stick the community brought her."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import mask_id_number, seal_phone_row
from services.visits import cadence, idcard, schedule
from services.visits.config import tz
from services.visits.demo_data import GIVEN, NEEDS, REGION, SURNAMES, ZHAO_ID, ZHAO_ID_NUMBER, ZHAO_PHONE
from services.visits.models import Need, NeedNote, Visit

Rows = dict[Any, list[dict[str, Any]]]


def household_residents(
    rng: random.Random,
    cipher: Any,
    hid: UUID,
    community: str,
    compound: str,
    building_id: UUID,
    is_zhao: bool,
    serial: int,
    issued: set[str],
    today: date,
    long_ago: datetime,
) -> tuple[list[cadence.Person], list[dict[str, Any]]]:
    """A household's people (for its visiting tier) and its resident rows: 赵 alone at her door, elsewhere one to
    four people of a surname, some of them elderly. ID numbers are unique across the demo (``issued``)."""
    specs: list[tuple[str, date, str, set[str], str, str | None, UUID]]
    if is_zhao:
        specs = [
            ("赵桂香", date(1941, 3, 8), "F", {"living_alone"}, "needs_aid", "左腿受伤，行走困难，需拐杖", ZHAO_ID)
        ]
    else:
        size = rng.choices([1, 2, 3, 4], weights=[2, 4, 3, 2])[0]
        surname = rng.choice(SURNAMES)
        elder = rng.random() < 0.3
        specs = []
        for k in range(size):
            age = rng.randint(60, 94) if elder and k < 2 else rng.randint(1, 59)
            born = today - timedelta(days=age * 365 + rng.randint(0, 364))
            tags: set[str] = set()
            if elder and k < 2:
                if size == 1:
                    tags.add("living_alone")
                elif size == 2:
                    tags.add("empty_nest")
            if rng.random() < 0.03:
                tags.add("dibao")
            if rng.random() < 0.01:
                tags.add("tekun")
            if rng.random() < 0.02:
                tags.add("disabled")
            mobility = "needs_aid" if age > 85 and rng.random() < 0.5 else "independent"
            specs.append(
                (
                    surname + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else ""),
                    born,
                    rng.choice("FM"),
                    tags,
                    mobility,
                    None,
                    uuid7(),
                )
            )
    residents, people = [], []
    for i, (name, born, gender, tags, mobility, notes, rid) in enumerate(specs):
        number = ZHAO_ID_NUMBER if rid == ZHAO_ID else idcard.make(REGION, born, serial + i)
        while number in issued:  # the same birthday and sequence number: take the next sequence number
            serial += 7
            number = idcard.make(REGION, born, serial + i)
        issued.add(number)
        residents.append(
            seal_phone_row(
                {
                    "id": rid,
                    "household_id": hid,
                    "community": community,
                    "compound": compound,
                    "building_id": building_id,
                    "name": name,
                    "gender": gender,
                    "birth_date": born,
                    "tags": schedule.store_tags(tags),
                    "mobility": mobility,
                    "phone": ZHAO_PHONE if rid == ZHAO_ID else f"13{rng.randint(3, 9)}{rng.randrange(10**8):08d}",
                    "id_number_enc": cipher.seal(number, "residents", "id_number_enc", rid),
                    "id_number_hash": cipher.lookup_hash(number),
                    "id_number_masked": mask_id_number(number),
                    "health_notes_enc": cipher.seal(notes, "residents", "health_notes_enc", rid) if notes else None,
                    "status": "active",
                    "status_effective_date": None,
                    "account_subject": None,
                    "created_at": long_ago,
                    "updated_at": long_ago,
                },
                cipher,
                "residents",
            )
        )
        people.append(cadence.Person(frozenset(tags), born))
    return people, residents


def visit_row(
    rng: random.Random, h: dict[str, Any], worker: dict[str, Any], at: datetime, outcome: str
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "household_id": h["id"],
        "community": h["community"],
        "compound": h["compound"],
        "building_id": h["building_id"],
        "worker_id": worker["id"],
        "recorded_by": worker["subject"],
        "recorded_by_name": worker["name"],
        "visitors": [],
        "visited_at": at,
        "outcome": outcome,
        "latitude": None,
        "longitude": None,
        "distance_m": None,
        "far_from_home": False,
        "notes": None,
        "satisfaction": rng.choice([4, 5, 5]) if outcome == "visited" else None,
        "task_id": None,
        "created_at": at,
    }


def need_row(h: dict[str, Any], worker: dict[str, Any], **kw: Any) -> dict[str, Any]:
    base = {
        "id": uuid7(),
        "household_id": h["id"],
        "resident_id": None,
        "visit_id": None,
        "community": h["community"],
        "compound": h["compound"],
        "building_id": h["building_id"],
        "description": "",
        "urgency": "normal",
        "owner": worker["subject"],
        "owner_name": worker["name"],
        "raised_by": worker["subject"],
        "raised_by_name": worker["name"],
        "issue_id": None,
        "escalated_at": None,
        "resolution": None,
        "resolved_at": None,
        "resolved_by": None,
        "closed_at": None,
        "closed_by": None,
        "closed_via": None,
        "close_reason": None,
        "returned_reason": None,
        "rating": None,
    }
    base.update(kw)
    base.setdefault("updated_at", base["created_at"])
    return base


def zhao_story(rows: Rows, h: dict[str, Any], worker: dict[str, Any], current: datetime) -> None:
    visit = rows[Visit][-1]
    visit.update(notes="赵奶奶八十多岁独居，腿受伤几乎走不了路，已当场上报社区。", satisfaction=5)
    raised = visit["visited_at"]
    done = raised + timedelta(hours=5)
    need = need_row(
        h,
        worker,
        resident_id=ZHAO_ID,
        visit_id=visit["id"],
        category="mobility_aid",
        title="腿受伤行走困难，需要拐杖 Hurt her leg, can hardly walk: needs a walking stick",
        description="独居老人，80岁以上，左腿受伤",
        urgency="high",
        due_on=cadence.need_due_on("high", raised.astimezone(tz()).date()),
        status="confirmed",
        resolution="社区当天送来拐杖 The community brought her a walking stick the same day",
        resolved_at=done,
        resolved_by=worker["subject"],
        closed_at=done + timedelta(hours=1),
        closed_by=worker["subject"],
        closed_via="resident",
        rating=5,
        created_at=raised,
        updated_at=done + timedelta(hours=1),
    )
    rows[Need].append(need)
    for action, at, text in (
        ("raised", raised, "During a visit"),
        ("resolved", done, need["resolution"]),
        ("confirmed", done + timedelta(hours=1), "rating 5/5"),
    ):
        rows[NeedNote].append(
            {
                "id": uuid7(),
                "need_id": need["id"],
                "action": action,
                "actor": worker["subject"],
                "actor_name": worker["name"],
                "note": text,
                "at": at,
            }
        )


def random_need(
    rng: random.Random,
    rows: Rows,
    h: dict[str, Any],
    worker: dict[str, Any],
    current: datetime,
    today: date,
) -> None:
    category, title, urgency = rng.choice(NEEDS)
    raised = current - timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 10))
    state = rng.random()
    kw: dict[str, Any] = {
        "category": category,
        "title": title,
        "urgency": urgency,
        "created_at": raised,
        "due_on": cadence.need_due_on(urgency, raised.astimezone(tz()).date()),
    }
    if state < 0.7:
        done = raised + timedelta(days=rng.randint(0, 9), hours=rng.randint(1, 12))
        if done < current:
            kw.update(
                status="confirmed",
                resolution="已处理 Done",
                resolved_at=done,
                resolved_by=worker["subject"],
                closed_at=done + timedelta(hours=3),
                closed_by=worker["subject"],
                closed_via="resident",
                updated_at=done + timedelta(hours=3),
            )
        else:
            kw.update(status="in_progress")
    else:
        kw.update(status=rng.choice(["open", "in_progress"]))
    need = need_row(h, worker, **kw)
    rows[Need].append(need)
    rows[NeedNote].append(
        {
            "id": uuid7(),
            "need_id": need["id"],
            "action": "raised",
            "actor": worker["subject"],
            "actor_name": worker["name"],
            "note": None,
            "at": raised,
        }
    )
