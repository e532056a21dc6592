"""Demo data: Zuoyun county's 7 communities and 89 compounds (云泰园 Yuntaiyuan affordable housing among them),
buildings, ~3,000 households and ~6,000 residents, grid workers and their assignments, the visiting tiers,
a quarter's visit history — and the story from the report: grid worker 常红 finds 赵, over 80 and living
alone in Yuntaiyuan, hurt her leg; the community brings her a walking stick.

Idempotent (does nothing once the communities exist) and fast: deterministic rows, bulk Core inserts in one
transaction.
"""

from __future__ import annotations

import logging
import random
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import field_cipher, mask_id_number, seal_phone_row
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.sql import table_of
from services.visits import cadence, idcard, schedule
from services.visits.config import now, tz
from services.visits.models import (
    Building,
    Community,
    Compound,
    GridAssignment,
    GridWorker,
    Household,
    Need,
    NeedNote,
    Resident,
    Visit,
    VisitPolicy,
    VisitRound,
)
from services.visits.places import address_of

log = logging.getLogger(__name__)

COMMUNITIES = [  # code, name, compounds
    ("yunxing", "云兴街社区", 14),
    ("dongyan", "东延路社区", 13),
    ("yuntai", "云泰社区", 13),
    ("yunhe", "云和社区", 12),
    ("gangcheng", "港城社区", 13),
    ("xinyuan", "新苑社区", 12),
    ("nanjie", "南街社区", 12),
]
SYLLABLES = [
    ("an", "安"),
    ("kang", "康"),
    ("fu", "福"),
    ("ping", "平"),
    ("hua", "华"),
    ("ming", "明"),
    ("xiang", "祥"),
    ("rui", "瑞"),
    ("jing", "景"),
    ("lin", "林"),
    ("shui", "水"),
    ("qing", "青"),
    ("feng", "丰"),
    ("chang", "昌"),
    ("sheng", "盛"),
    ("hong", "宏"),
    ("jin", "金"),
    ("yu", "裕"),
    ("de", "德"),
    ("shun", "顺"),
    ("tong", "通"),
    ("da", "达"),
    ("mei", "美"),
    ("li", "丽"),
]
SUFFIXES = [("yuan", "园"), ("huayuan", "花园"), ("xiaoqu", "小区"), ("jiayuan", "家园"), ("jiashuyuan", "家属院")]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
GIVEN = "秀英桂兰玉珍凤霞建国志强海燕丽娟明华文军红梅淑芬德胜振华春生金花小平永红卫东"
REGION = "140226"  # 左云县 Zuoyun county

# Stable ids for the story, the same as the contract examples (so other services' demos can link to them).
ZHAO_ID = UUID("01936f2e-a000-7000-8000-0000000000bb")
ZHAO_HOUSEHOLD = UUID("01936f2e-a000-7000-8000-0000000000aa")
# As the canteen's demo registers her (same ID number and phone), so both services find the same person.
ZHAO_ID_NUMBER = "140226194103080025"
ZHAO_PHONE = "13935201101"


def _compounds(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(community, code, name, kind) × 89."""
    combos = [(a, b) for a in SYLLABLES for b in SYLLABLES if a != b]
    rng.shuffle(combos)
    out: list[tuple[str, str, str, str]] = [
        ("yuntai", "yuntaiyuan", "云泰园", "affordable_housing"),
        ("yunhe", "yunheyuan", "云和园", "resettlement"),
    ]
    used = {"yuntaiyuan", "yunheyuan"}
    kinds = ["commercial"] * 5 + ["old_quarter"] * 2 + ["work_unit", "affordable_housing"]
    i = 0
    for code, _, count in COMMUNITIES:
        have = sum(1 for c in out if c[0] == code)
        while have < count:
            (p1, c1), (p2, c2) = combos[i]
            s_code, s_name = SUFFIXES[i % len(SUFFIXES)]
            i += 1
            slug = f"{p1}{p2}{s_code}"[:40]
            if slug in used:
                continue
            used.add(slug)
            out.append((code, slug, f"{c1}{c2}{s_name}", rng.choice(kinds)))
            have += 1
    return out


async def seed_demo(runtime: ServiceRuntime) -> None:
    async with runtime.uow() as uow:
        exists = await uow.session.execute(sa.select(col(Community.id)).where(col(Community.code) == "yunxing"))
        if exists.first() is not None:
            return
        rows = build_rows(field_cipher(runtime.settings))
        for model, items in rows.items():
            table = table_of(model)
            for start in range(0, len(items), 2000):
                await uow.session.execute(sa.insert(table), items[start : start + 2000])
        await uow.commit()
    log.info(
        "visits: demo data loaded (%s)",
        ", ".join(
            f"{len(v)} {m.__tablename__}"  # type: ignore[attr-defined]
            for m, v in rows.items()
        ),
    )


def build_rows(cipher: Any) -> dict[Any, list[dict[str, Any]]]:
    rng = random.Random(20250729)
    issued: set[str] = set()
    current = now()
    today = current.astimezone(tz()).date()
    long_ago = current - timedelta(days=400)
    rows: dict[Any, list[dict[str, Any]]] = {
        m: []
        for m in (
            Community,
            Compound,
            Building,
            Household,
            Resident,
            GridWorker,
            GridAssignment,
            VisitPolicy,
            Visit,
            Need,
            NeedNote,
            VisitRound,
        )
    }

    rules = list(schedule.BUILTIN_RULES)
    for r in rules:
        rows[VisitPolicy].append(
            {
                "id": uuid7(),
                "code": r.code,
                "name": schedule.BUILTIN_NAMES[r.code],
                "cadence_days": r.cadence_days,
                "min_age": r.min_age,
                "all_tags": sorted(r.all_tags),
                "retry_not_home_days": r.retry_not_home_days,
                "max_not_home_attempts": r.max_not_home_attempts,
                "retry_refused_days": r.retry_refused_days,
                "active": True,
                "created_at": long_ago,
                "updated_at": long_ago,
            }
        )
    for code, name, _ in COMMUNITIES:
        rows[Community].append({"id": uuid7(), "code": code, "name": name, "created_at": long_ago})

    # Grid workers: 常红 for Yuntaiyuan and its neighbours; three or four per community.
    workers: dict[str, list[dict[str, Any]]] = {}
    for code, _, _ in COMMUNITIES:
        n = 4 if code == "yuntai" else 3
        workers[code] = []
        for k in range(n):
            name = (
                "常红" if (code, k) == ("yuntai", 0) else rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            )
            subject = "gw-changhong" if name == "常红" else f"gw-{code}-{k + 1}"
            w = seal_phone_row(
                {
                    "id": uuid7(),
                    "subject": subject,
                    "name": name,
                    "community": code,
                    "phone": f"139{rng.randrange(10**8):08d}",
                    "active": True,
                    "left_at": None,
                    "created_at": long_ago,
                },
                cipher,
                "grid_workers",
            )
            workers[code].append(w)
            rows[GridWorker].append(w)

    visited_households = 0
    serial = 0
    per_community_index: dict[str, int] = {}
    for community, code, cname, kind in _compounds(rng):
        lat, lon = 40.01 + rng.uniform(-0.03, 0.03), 112.70 + rng.uniform(-0.03, 0.03)
        rows[Compound].append(
            {
                "id": uuid7(),
                "code": code,
                "name": cname,
                "kind": kind,
                "community": community,
                "address": f"左云县 {cname}",
                "latitude": round(lat, 6),
                "longitude": round(lon, 6),
                "created_at": long_ago,
            }
        )
        idx = per_community_index.get(community, 0)
        per_community_index[community] = idx + 1
        team = workers[community]
        worker = team[0] if code == "yuntaiyuan" else team[idx % len(team)]
        rows[GridAssignment].append(
            {
                "id": uuid7(),
                "worker_id": worker["id"],
                "community": community,
                "compound": code,
                "building_id": None,
                "started_at": long_ago,
                "ended_at": None,
                "handed_over_to": None,
            }
        )
        for b in range(1, (5 if code == "yuntaiyuan" else rng.randint(3, 4)) + 1):
            building_id = uuid7()
            bname = f"{b}号楼"
            rows[Building].append(
                {
                    "id": building_id,
                    "name": bname,
                    "community": community,
                    "compound": code,
                    "latitude": round(lat + b * 0.0003, 6),
                    "longitude": round(lon + b * 0.0002, 6),
                    "created_at": long_ago,
                }
            )
            doors = [(str(u), f"{f}0{r}") for u in (1, 2) for f in range(1, 7) for r in (1, 2)]
            rng.shuffle(doors)
            chosen = set(doors[: rng.randint(8, 12)])
            if code == "yuntaiyuan" and b == 3:
                chosen.add(("2", "501"))  # 赵's door
            for unit, room in sorted(chosen):
                is_zhao = code == "yuntaiyuan" and b == 3 and (unit, room) == ("2", "501")
                hid = ZHAO_HOUSEHOLD if is_zhao else uuid7()
                people, residents = _household(
                    rng, cipher, hid, community, code, building_id, is_zhao, serial, issued, today, long_ago
                )
                serial += len(residents)
                rows[Resident].extend(residents)
                h = {
                    "id": hid,
                    "building_id": building_id,
                    "community": community,
                    "compound": code,
                    "unit": unit,
                    "room": room,
                    "note": None,
                    "address": address_of(cname, bname, unit, room),
                    "last_visited_at": None,
                    "last_attempt_at": None,
                    "last_outcome": None,
                    "failed_attempts": 0,
                    "created_at": long_ago,
                    "updated_at": current,
                }
                # A quarter's history: most doors visited in the last 100 days, some nobody home lately.
                roll = rng.random()
                cadence_days = cadence.tier_for(rules, people, today).cadence_days
                if roll < 0.85 or is_zhao:
                    # Mostly within the tier's cadence (a few slipping past it: the overdue list).
                    ago = 2 if is_zhao else rng.randint(0, int(cadence_days * 1.1))
                    at = current - timedelta(days=ago, hours=rng.randint(0, 8))
                    h.update(last_visited_at=at, last_attempt_at=at, last_outcome="visited")
                    rows[Visit].append(_visit(rng, h, worker, at, "visited"))
                    visited_households += 1
                elif roll < 0.92:
                    at = current - timedelta(days=rng.randint(1, 20))
                    h.update(last_attempt_at=at, last_outcome="not_home", failed_attempts=rng.randint(1, 3))
                    rows[Visit].append(_visit(rng, h, worker, at, "not_home"))
                h.update(schedule.plan(rules, people, schedule.schedule_of(_Obj(h)), today))
                rows[Household].append(h)
                if is_zhao:
                    _zhao_story(rows, h, worker, current)
                elif rng.random() < 0.12:
                    _random_need(rng, rows, h, worker, current, today)
    start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1) - timedelta(days=1)
    rows[VisitRound].append(
        {
            "id": uuid7(),
            "name": f"{start.year}年第{(start.month - 1) // 3 + 1}季度 地毯式走访",
            "community": None,
            "starts_on": start,
            "ends_on": end,
            "created_by": "demo",
            "created_at": long_ago,
        }
    )
    return rows


class _Obj:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


def _household(
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


def _visit(rng: random.Random, h: dict[str, Any], worker: dict[str, Any], at: datetime, outcome: str) -> dict[str, Any]:
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


def _need_row(h: dict[str, Any], worker: dict[str, Any], **kw: Any) -> dict[str, Any]:
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


def _zhao_story(
    rows: dict[Any, list[dict[str, Any]]], h: dict[str, Any], worker: dict[str, Any], current: datetime
) -> None:
    visit = rows[Visit][-1]
    visit.update(notes="赵奶奶八十多岁独居，腿受伤几乎走不了路，已当场上报社区。", satisfaction=5)
    raised = visit["visited_at"]
    done = raised + timedelta(hours=5)
    need = _need_row(
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


NEEDS = [
    ("home_repair", "楼道灯坏了 Stairwell light broken", "high"),
    ("environment", "楼下垃圾清运不及时 Rubbish not collected", "normal"),
    ("elderly_care", "希望提供助餐服务 Wants meal service", "normal"),
    ("health", "需要上门测血压 Needs blood-pressure checks at home", "normal"),
    ("subsidy", "咨询低保申请 Asks about the minimum allowance", "low"),
    ("safety", "单元门禁损坏 Entrance door lock broken", "high"),
]


def _random_need(
    rng: random.Random,
    rows: dict[Any, list[dict[str, Any]]],
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
    need = _need_row(h, worker, **kw)
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
