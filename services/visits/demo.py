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
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.ids import uuid7
from minsheng.platform.privacy import field_cipher, seal_phone_row
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.sql import table_of
from services.visits import cadence, schedule
from services.visits.config import now, tz
from services.visits.demo_data import COMMUNITIES, GIVEN, SURNAMES, ZHAO_HOUSEHOLD, compounds
from services.visits.demo_households import Rows, household_residents, random_need, visit_row, zhao_story
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


def build_rows(cipher: Any) -> Rows:
    """Every demo row, by model, drawn from one seeded random generator: the same county on every run."""
    rng = random.Random(20250729)
    issued: set[str] = set()
    current = now()
    today = current.astimezone(tz()).date()
    long_ago = current - timedelta(days=400)
    rows: Rows = {
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
    for community, code, cname, kind in compounds(rng):
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
                people, residents = household_residents(
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
                    rows[Visit].append(visit_row(rng, h, worker, at, "visited"))
                    visited_households += 1
                elif roll < 0.92:
                    at = current - timedelta(days=rng.randint(1, 20))
                    h.update(last_attempt_at=at, last_outcome="not_home", failed_attempts=rng.randint(1, 3))
                    rows[Visit].append(visit_row(rng, h, worker, at, "not_home"))
                h.update(schedule.plan(rules, people, schedule.schedule_of(_Obj(h)), today))
                rows[Household].append(h)
                if is_zhao:
                    zhao_story(rows, h, worker, current)
                elif rng.random() < 0.12:
                    random_need(rng, rows, h, worker, current, today)
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
