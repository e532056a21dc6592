"""Demo data (``minsheng run --demo``), idempotent: 31 red riders each leading a team of yellow riders (320),
a few blue couriers, the governance task list (骑士参与治理事项清单), and a handful of the 157 alliance
merchants with offers. Everything is inserted in bulk with fixed ids, so a second run changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from minsheng.platform.privacy import field_cipher, seal_phone_row
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.sql import table_of
from services.points import config
from services.points.models import (
    LedgerEntry,
    Merchant,
    MerchantCredential,
    Offer,
    Rider,
    RiderBalance,
    TaskType,
    Team,
)

NS = uuid.UUID("6f1b2d0e-5c1a-4b7e-9d3f-0a1b2c3d4e5f")
COMMUNITIES = {
    "yunxing": "云兴",
    "dongyan": "东延",
    "yuntai": "云泰",
    "yunhe": "云和",
    "gangcheng": "港城",
    "xinyuan": "新苑",
    "nanjie": "南街",
}
RED_RIDERS, YELLOW_RIDERS, BLUE_RIDERS = 31, 320, 20
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
GIVEN = "伟明强磊军洋勇杰涛超斌辉刚平鹏飞宇浩凯龙华建国志刚海波峰亮俊雷晨阳"
PLATFORMS = ("meituan", "eleme", "sf-express", "jd-logistics")
PHONE_DIGIT = {"red": 8, "yellow": 9, "blue": 7}

TASK_TYPES: list[dict[str, Any]] = [
    {
        "code": "meal_delivery",
        "name": "送餐上门 Meal delivery to an elder",
        "points": 5,
        "daily_cap": 6,
        "verification": "auto",
        "description": "Take a happiness-canteen meal to an elder who cannot walk there; photo at the door as proof.",
    },
    {
        "code": "hazard_patrol",
        "name": "安全隐患巡查 Hazard patrol",
        "points": 10,
        "daily_cap": 3,
        "verification": "staff",
        "description": "Walk an assigned street and photograph fire exits, wires, manhole covers.",
    },
    {
        "code": "elder_visit",
        "name": "独居老人探访 Check on an elder living alone",
        "points": 8,
        "daily_cap": 2,
        "verification": "staff",
        "description": "Knock, chat, and tell the grid worker anything worrying.",
    },
    {
        "code": "traffic_civility",
        "name": "文明交通劝导 Traffic civility duty",
        "points": 6,
        "daily_cap": 2,
        "verification": "staff",
        "description": "An hour at a busy crossing reminding riders of the rules.",
    },
    {
        "code": "flood_watch",
        "name": "汛期值守 Flood-season watch",
        "points": 15,
        "daily_cap": 1,
        "verification": "staff",
        "description": "Report standing water and blocked drains during heavy rain.",
    },
    {
        "code": "anti_fraud",
        "name": "反诈宣传 Anti-fraud leaflets",
        "points": 4,
        "daily_cap": 3,
        "verification": "auto",
        "description": "Hand out anti-fraud leaflets with deliveries; photo as proof.",
    },
    {
        "code": "lost_and_found",
        "name": "寻人寻物协助 Help find a missing person",
        "points": 20,
        "daily_cap": 0,
        "verification": "staff",
        "description": "Watch for a missing elder or child along your routes.",
    },
    {
        "code": "community_volunteer",
        "name": "社区志愿服务 Community volunteering",
        "points": 10,
        "daily_cap": 2,
        "verification": "staff",
        "description": "Help at a community event, vaccination day or clean-up.",
    },
]

MERCHANTS: list[dict[str, Any]] = [
    {
        "name": "云兴街老王理发",
        "category": "barber",
        "community": "yunxing",
        "address": "云兴街 18 号",
        "offers": [
            {
                "title": "理发立减 10 元",
                "kind": "discount",
                "points_cost": 50,
                "discount_fen": 1000,
                "per_rider_limit": 2,
            }
        ],
    },
    {
        "name": "东延路便民超市",
        "category": "grocery",
        "community": "dongyan",
        "address": "东延路 6 号",
        "offers": [
            {"title": "矿泉水一箱", "kind": "goods", "points_cost": 80, "stock": 50},
            {"title": "毛巾一条", "kind": "goods", "points_cost": 30, "stock": 100},
        ],
    },
    {
        "name": "云泰园电动车维修",
        "category": "repair",
        "community": "yuntai",
        "address": "云泰园南门",
        "offers": [{"title": "电动车维修立减 20 元", "kind": "discount", "points_cost": 100, "discount_fen": 2000}],
    },
    {
        "name": "港城刀削面",
        "category": "restaurant",
        "community": "gangcheng",
        "address": "港城剧院西侧",
        "offers": [{"title": "刀削面一碗", "kind": "goods", "points_cost": 60, "stock": 200, "per_rider_limit": 4}],
    },
    {
        "name": "新苑洗衣店",
        "category": "laundry",
        "community": "xinyuan",
        "address": "新苑小区 3 号楼底商",
        "offers": [{"title": "洗衣立减 8 元", "kind": "discount", "points_cost": 40, "discount_fen": 800}],
    },
]

# A demo-only merchant key so the signing example in docs/points.md works against `minsheng run --demo`.
DEMO_KEY_ID = "mk_demo_barber"
DEMO_SECRET = "msk_demo_only_not_a_real_secret"


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NS, ":".join(str(p) for p in parts))


def _name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)] + ("" if i % 3 else GIVEN[(i * 11) % len(GIVEN)])


def _table(model: Any) -> sa.Table:
    return table_of(model)


async def seed_demo(runtime: ServiceRuntime) -> None:
    first_team = _id("team", 0)
    fc = field_cipher(runtime.settings)
    async with runtime.db.engine.begin() as conn:
        if (await conn.execute(sa.select(_table(Team).c.id).where(_table(Team).c.id == first_team))).first():
            return
        now = utcnow()
        settings = config.get()
        # Demo earnings are dated earlier this month (yesterday at the latest), so they show on this month's
        # leaderboards without eating into today's daily cap.
        earned_at = max(settings.month_bounds(settings.local_month(now))[0], now - timedelta(days=1))
        slugs = list(COMMUNITIES)
        teams, riders, balances, entries = [], [], [], []
        for n in range(RED_RIDERS):
            slug = slugs[n % len(slugs)]
            teams.append(
                {
                    "id": _id("team", n),
                    "name": f"{COMMUNITIES[slug]}红骑士{n // len(slugs) + 1}队",
                    "community": slug,
                    "leader_rider_id": _id("rider", "red", n),
                    "created_at": now + timedelta(microseconds=n),
                }
            )

        def rider(kind: str, i: int, team: int | None, name: str | None = None) -> None:
            rid = _id("rider", kind, i)
            slug = slugs[(team if team is not None else i) % len(slugs)]
            points = 5 + (i * 37) % 56
            riders.append(
                seal_phone_row(
                    {
                        "id": rid,
                        "subject": f"demo-rider-{kind}-{i:03d}",
                        "name": name or _name(i + len(kind) * 100),
                        "platform": PLATFORMS[i % len(PLATFORMS)],
                        "community": slug,
                        "phone": f"13{PHONE_DIGIT[kind]}{i:08d}",
                        "role": kind,
                        "status": "active",
                        "team_id": _id("team", team) if team is not None else None,
                        "verified_at": now,
                        "verified_by": "demo",
                        "flagged": False,
                        "false_reports": 0,
                        "created_at": now + timedelta(microseconds=i),
                        "updated_at": now,
                    },
                    fc,
                    "riders",
                )
            )
            balances.append({"rider_id": rid, "balance": points, "updated_at": now})
            entries.append(
                {
                    "id": _id("entry", kind, i),
                    "rider_id": rid,
                    "kind": "earned",
                    "amount": points,
                    "balance_after": points,
                    "cause_type": "demo",
                    "cause_id": f"demo:{kind}:{i}",
                    "note": "Demo: points earned this month",
                    "created_at": earned_at,
                }
            )

        for n in range(RED_RIDERS):
            rider("red", n, n, name="樊伟明" if n == 4 else None)  # 樊伟明 of Gangcheng, from the news report
        for i in range(YELLOW_RIDERS):
            rider("yellow", i, i % RED_RIDERS)
        for i in range(BLUE_RIDERS):
            rider("blue", i, None)
        await conn.execute(sa.insert(_table(Team)), teams)
        await conn.execute(sa.insert(_table(Rider)), riders)
        await conn.execute(sa.insert(_table(RiderBalance)), balances)
        await conn.execute(sa.insert(_table(LedgerEntry)), entries)

        existing = set((await conn.execute(sa.select(_table(TaskType).c.code))).scalars())
        types = [
            {**t, "proof_required": True, "active": True, "created_at": now, "updated_at": now}
            for t in TASK_TYPES
            if t["code"] not in existing
        ]
        if types:
            await conn.execute(sa.insert(_table(TaskType)), types)

        merchant_rows, offer_rows = [], []
        for m, spec in enumerate(MERCHANTS):
            mid = _id("merchant", m)
            merchant_rows.append(
                {
                    "id": mid,
                    "name": spec["name"],
                    "category": spec["category"],
                    "community": spec["community"],
                    "address": spec["address"],
                    "void_window_minutes": 30,
                    "status": "active",
                    "created_by": "demo",
                    "created_at": now + timedelta(microseconds=m),
                    "updated_at": now,
                }
            )
            for o, offer in enumerate(spec["offers"]):
                stock = offer.get("stock")
                offer_rows.append(
                    {
                        "id": _id("offer", m, o),
                        "merchant_id": mid,
                        "title": offer["title"],
                        "description": "",
                        "kind": offer["kind"],
                        "points_cost": offer["points_cost"],
                        "per_rider_limit": offer.get("per_rider_limit"),
                        "discount_fen": offer.get("discount_fen"),
                        "stock_total": stock,
                        "stock_remaining": stock,
                        "active": True,
                        "created_at": now + timedelta(microseconds=10 * m + o),
                        "updated_at": now,
                    }
                )
        await conn.execute(sa.insert(_table(Merchant)), merchant_rows)
        await conn.execute(sa.insert(_table(Offer)), offer_rows)
        if runtime.settings.mode != "embedded":
            return
        await conn.execute(
            sa.insert(_table(MerchantCredential)).values(
                key_id=DEMO_KEY_ID,
                merchant_id=_id("merchant", 0),
                label="demo (embedded mode only)",
                secret_enc=fc.seal(DEMO_SECRET, "merchant_credentials", "secret_enc", DEMO_KEY_ID),
                created_by="demo",
                created_at=now,
            )
        )
