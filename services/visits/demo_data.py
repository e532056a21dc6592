"""The tables the visits demo is drawn from: Zuoyun county's 7 communities, the syllables and suffixes its 89
compound names are made of, surnames and given names, the needs grid workers hear of, and the fixed ids of 赵
(the story in ``demo.py``) that other services' demos link to."""

from __future__ import annotations

import random
from uuid import UUID

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


NEEDS = [
    ("home_repair", "楼道灯坏了 Stairwell light broken", "high"),
    ("environment", "楼下垃圾清运不及时 Rubbish not collected", "normal"),
    ("elderly_care", "希望提供助餐服务 Wants meal service", "normal"),
    ("health", "需要上门测血压 Needs blood-pressure checks at home", "normal"),
    ("subsidy", "咨询低保申请 Asks about the minimum allowance", "low"),
    ("safety", "单元门禁损坏 Entrance door lock broken", "high"),
]


def compounds(rng: random.Random) -> list[tuple[str, str, str, str]]:
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
