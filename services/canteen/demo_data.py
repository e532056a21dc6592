"""The demo canteens' tables: the four happiness canteens of Zuoyun county and their meal slots, the dishes
of a week of "10 yuan for four dishes and a soup" menus (and a soft-food set), breakfast and dinner, the
county's subsidy rules, and a few diners with their families — 赵 among them, as the visits demo has her."""

from __future__ import annotations

from datetime import date, time
from typing import Any
from uuid import UUID

CANTEENS: list[dict[str, Any]] = [
    {
        "code": "yunxing-street",
        "name": "云兴街幸福食堂 Yunxing Street Happiness Canteen",
        "status": "open",
        "address": "云兴街12号 Yunxing Street 12",
        "community": "yunxing",
        "communities": ["gangcheng", "yunxing"],
        "operator": "左云县颐康餐饮服务有限公司 Yikang Catering Co.",
        "latitude": 40.0131,
        "longitude": 112.7029,
        "service_radius_m": 1500,
    },
    {
        "code": "dongyan-road",
        "name": "东延路幸福食堂 Dongyan Road Happiness Canteen",
        "status": "planned",
        "address": "东延路8号 Dongyan Road 8",
        "community": "dongyan",
        "communities": ["dongyan", "nanjie"],
        "operator": "左云县颐康餐饮服务有限公司 Yikang Catering Co.",
        "latitude": 40.0102,
        "longitude": 112.7105,
        "service_radius_m": 1500,
    },
    {
        "code": "yuntaiyuan",
        "name": "云泰园幸福食堂 Yuntaiyuan Happiness Canteen",
        "status": "planned",
        "address": "云泰园小区3号楼底商 Yuntaiyuan, building 3",
        "community": "yuntai",
        "communities": ["yuntai"],
        "operator": "大同市乐龄餐饮管理有限公司 Leling Catering Management Co.",
        "latitude": 40.0158,
        "longitude": 112.6984,
        "service_radius_m": 1000,
    },
    {
        "code": "yunheyuan",
        "name": "云和园幸福食堂 Yunheyuan Happiness Canteen",
        "status": "planned",
        "address": "云和园小区南门 Yunheyuan, south gate",
        "community": "yunhe",
        "communities": ["xinyuan", "yunhe"],
        "operator": "大同市乐龄餐饮管理有限公司 Leling Catering Management Co.",
        "latitude": 40.0087,
        "longitude": 112.6951,
        "service_radius_m": 1000,
    },
]

SLOTS: dict[str, dict[str, Any]] = {
    "breakfast": {"serve_from": time(7, 0), "serve_until": time(8, 30), "capacity": 60, "cutoff_minutes": 720},
    "lunch": {
        "serve_from": time(11, 0),
        "serve_until": time(12, 30),
        "capacity": 120,
        "cutoff_minutes": 120,
        "deliver_by": time(12, 0),
    },
    "dinner": {"serve_from": time(17, 0), "serve_until": time(18, 30), "capacity": 80, "cutoff_minutes": 180},
}

LUNCHES = [
    ["西红柿炒鸡蛋 tomato and egg", "土豆丝 shredded potato", "红烧豆腐 braised tofu", "清炒油菜 greens"],
    ["肉末茄子 aubergine with mince", "炒豆芽 bean sprouts", "蒸南瓜 steamed pumpkin", "凉拌黄瓜 cucumber"],
    ["小炒肉 stir-fried pork", "醋溜白菜 cabbage", "鸡蛋羹 egg custard", "炒山药 yam"],
    ["红烧鸡块 braised chicken", "炒莜面 oat noodles", "烧茄子 aubergine", "炒西葫芦 courgette"],
    ["鱼香肉丝 yuxiang pork", "家常豆腐 tofu", "炒土豆片 potato slices", "蒜蓉菠菜 spinach"],
    ["胡萝卜炖羊肉 lamb and carrot", "炒白菜 cabbage", "蒸鸡蛋 steamed egg", "拍黄瓜 cucumber"],
    ["宫保鸡丁 kung pao chicken", "炒豆角 green beans", "土豆炖豆腐 potato and tofu", "清炒西兰花 broccoli"],
]
SOUPS = ["紫菜蛋花汤 seaweed egg soup", "小米粥 millet porridge", "冬瓜汤 winter melon soup"]


def lunch_sets(day: int) -> list[dict[str, Any]]:
    dishes = [
        {"name": n, "tags": ["spicy"] if "宫保" in n or "鱼香" in n else [], "ingredients": []}
        for n in LUNCHES[day % len(LUNCHES)]
    ]
    dishes.append({"name": SOUPS[day % len(SOUPS)], "tags": ["soft", "low_salt"], "ingredients": []})
    soft = [
        {"name": "鸡蛋羹 egg custard", "tags": ["soft", "low_salt"], "ingredients": ["鸡蛋"]},
        {"name": "蒸南瓜 steamed pumpkin", "tags": ["soft", "low_salt", "diabetic_friendly"], "ingredients": []},
        {"name": "豆腐炖白菜 tofu and cabbage", "tags": ["soft", "low_salt"], "ingredients": ["豆腐", "白菜"]},
        {"name": "肉末烂面条 soft noodles", "tags": ["soft"], "ingredients": ["猪肉"]},
        {"name": SOUPS[day % len(SOUPS)], "tags": ["soft", "low_salt"], "ingredients": []},
    ]
    return [
        {
            "name": "四菜一汤 four dishes and a soup",
            "kind": "standard",
            "price_fen": 1000,
            "dishes": dishes,
            "tags": [],
        },
        {
            "name": "软食四菜一汤 soft four dishes and a soup",
            "kind": "soft",
            "price_fen": 1000,
            "dishes": soft,
            "tags": ["soft", "low_salt"],
        },
    ]


BREAKFAST = [
    {
        "name": "早餐 小米粥+鸡蛋+花卷 millet porridge, egg, steamed roll",
        "kind": "standard",
        "price_fen": 400,
        "tags": ["soft", "low_salt"],
        "dishes": [
            {"name": "小米粥 millet porridge", "tags": ["soft", "low_salt"], "ingredients": []},
            {"name": "煮鸡蛋 boiled egg", "tags": ["soft", "low_salt"], "ingredients": ["鸡蛋"]},
            {"name": "花卷 steamed roll", "tags": ["soft", "low_salt"], "ingredients": []},
        ],
    }
]
DINNER = [
    {
        "name": "三菜一汤 three dishes and a soup",
        "kind": "standard",
        "price_fen": 800,
        "tags": [],
        "dishes": [
            {"name": "炒土豆丝 shredded potato", "tags": [], "ingredients": []},
            {"name": "木耳炒蛋 egg and wood ear", "tags": [], "ingredients": ["鸡蛋"]},
            {"name": "清炒时蔬 seasonal greens", "tags": ["low_salt"], "ingredients": []},
            {"name": "小米粥 millet porridge", "tags": ["soft", "low_salt"], "ingredients": []},
        ],
    }
]

RULES: list[dict[str, Any]] = [
    {
        "key": "age-60-69",
        "name": "60–69岁助餐补贴 age 60–69",
        "category": "age_60_69",
        "amount_fen": 100,
        "min_age": 60,
        "max_age": 69,
    },
    {
        "key": "age-70-79",
        "name": "70–79岁助餐补贴 age 70–79",
        "category": "age_70_79",
        "amount_fen": 200,
        "min_age": 70,
        "max_age": 79,
    },
    {
        "key": "age-80-plus",
        "name": "80岁以上助餐补贴 age 80+",
        "category": "age_80_plus",
        "amount_fen": 300,
        "min_age": 80,
        "daily_cap_fen": 600,
    },
    {
        "key": "dibao",
        "name": "低保老人补贴 minimum-allowance supplement",
        "category": "dibao",
        "amount_fen": 200,
        "stack_group": "circumstance",
        "circumstances": ["dibao"],
        "monthly_cap_fen": 12000,
    },
    {
        "key": "tekun",
        "name": "特困供养老人助餐 extreme-hardship support",
        "category": "tekun",
        "amount_fen": 700,
        "stack_group": "circumstance",
        "circumstances": ["tekun"],
    },
    {
        "key": "disabled",
        "name": "残疾老人补贴 disability supplement",
        "category": "disabled",
        "amount_fen": 100,
        "stack_group": "disability",
        "circumstances": ["disabled"],
        "funder": "county_disabled_persons_federation",
    },
]

VISITS_ZHAO = UUID("01936f2e-a000-7000-8000-0000000000bb")  # services/visits/demo_data.py ZHAO_ID (no import)

DINERS: list[dict[str, Any]] = [
    # Linked to her visits resident (the same person in the visits demo: same ID number, fixed id).
    {
        "name": "赵桂香",
        "resident_id": VISITS_ZHAO,
        "birth_date": date(1941, 3, 8),
        "community": "yuntai",
        "compound": "yuntaiyuan",
        "canteen": "yunxing-street",
        "circumstances": ["living_alone"],
        "dietary": ["soft_food", "low_salt"],
        "dislikes": ["香菜"],
        "taste_notes": "腿脚受伤, 行走不便; likes millet porridge",
        "delivery_eligible": True,
        "delivery_address": "云泰园3号楼2单元501 Yuntaiyuan building 3, unit 2, 501",
        "phone": "13935201101",
        "id_number": "140226194103080025",
        "health_notes": "左腿受伤, 需要拐杖 — injured left leg, uses a stick",
    },
    {
        "name": "王秀英",
        "birth_date": date(1950, 6, 12),
        "community": "yunxing",
        "compound": None,
        "canteen": "yunxing-street",
        "circumstances": ["dibao"],
        "dietary": ["low_salt"],
        "dislikes": [],
        "phone": "13935201102",
        "id_number": "140226195006120048",
    },
    {
        "name": "李德明",
        "birth_date": date(1944, 11, 2),
        "community": "yunxing",
        "compound": None,
        "canteen": "yunxing-street",
        "circumstances": ["living_alone"],
        "dietary": ["diabetic"],
        "dislikes": ["肥肉"],
        "phone": "13935201103",
        "id_number": "140226194411020013",
        "health_notes": "糖尿病 type 2 diabetes",
    },
    {
        "name": "张桂兰",
        "birth_date": date(1938, 1, 20),
        "community": "gangcheng",
        "compound": None,
        "canteen": "yunxing-street",
        "circumstances": ["tekun"],
        "dietary": ["soft_food"],
        "dislikes": [],
        "phone": "13935201104",
        "id_number": "140226193801200027",
    },
    {
        "name": "刘建国",
        "birth_date": date(1958, 9, 30),
        "community": "yunxing",
        "compound": None,
        "canteen": "yunxing-street",
        "circumstances": [],
        "dietary": [],
        "dislikes": ["辣椒"],
        "phone": "13935201105",
        "id_number": "140226195809300035",
    },
    {
        "name": "陈玉梅",
        "birth_date": date(1953, 4, 18),
        "community": "dongyan",
        "compound": None,
        "canteen": "dongyan-road",
        "circumstances": ["disabled"],
        "dietary": ["no_spicy"],
        "dislikes": [],
        "phone": "13935201106",
        "id_number": "140226195304180046",
    },
]

# Family the canteen can reach: 赵's son has no WeChat account of ours, only a phone (the absence alert
# reaches him by SMS through the notify service).
FAMILY: dict[str, list[dict[str, Any]]] = {
    "赵桂香": [
        {
            "subject": "demo-family-zhao-son",
            "name": "王磊",
            "relation": "son",
            "phone": "13935209901",
            "can_order": True,
            "can_pay": True,
        }
    ],
}
