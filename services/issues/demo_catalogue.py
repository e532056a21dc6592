"""The demo catalogue a county would publish (seeded by ``minsheng run --demo`` and by the tests): 7
departments (Fenyi merged 18 desks into 7), categories with Chinese and English names and deadlines, a few of
the 27 certificates a community must not issue, the 7 communities and the reply templates. Idempotent: what
exists is left alone."""

from __future__ import annotations

from typing import Any

from minsheng.platform.service import ServiceRuntime
from services.issues.catalogue import invalidate_cache
from services.issues.models import Category, Community, Department, NotHandledMatter, ReplyTemplate

DEPARTMENTS = [
    ("party_mass", "党建和群众工作部", "Party Building and Mass Work", "Volunteers, patrols, community votes"),
    ("civil_affairs", "民政和社会事务部", "Civil Affairs and Social Services", "Elderly care, subsidies, canteens"),
    ("urban_mgmt", "城市管理和环境卫生部", "Urban Management and Sanitation", "Rubbish, parking, greenery"),
    ("safety", "应急管理和安全生产部", "Emergency Management and Safety", "Fire, gas, hazards"),
    ("property", "物业和住房保障部", "Property and Housing", "Compound facilities, affordable housing"),
    ("public_works", "市政设施部", "Municipal Facilities", "Roads, street lights, drains, water mains"),
    ("grid_governance", "综合治理和网格部", "Comprehensive Governance and Grid", "Disputes, noise, grid workers"),
]

YES_NO = [{"key": "yes", "name": "是 Yes"}, {"key": "no", "name": "否 No"}]


def _attr(
    code: str,
    description: str,
    datatype: str = "string",
    *,
    required: bool = False,
    order: int = 1,
    values: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "datatype": datatype,
        "required": required,
        "variable": True,
        "description": description,
        "datatype_description": None,
        "order": order,
        "values": values or [],
    }


CATEGORY_ROW = ("code", "name_zh", "name_en", "group", "department", "first_response_minutes", "resolution_hours")


def _category(
    row: tuple[str, str, str, str, str, int, int], description: str, keywords: str, **more: Any
) -> dict[str, Any]:
    """A category: ``row`` holds the fields named in ``CATEGORY_ROW``; ``more``, whatever else this one sets
    (materials, attributes, ``dedupe=False``, ...)."""
    return {**dict(zip(CATEGORY_ROW, row, strict=True)), "description": description, "keywords": keywords, **more}


def _urgent(
    row: tuple[str, str, str, str, str, int, int], description: str, keywords: str, guidance: str, **more: Any
) -> dict[str, Any]:
    """An urgent category: what to do at once (``guidance``) comes with it."""
    return _category(row, description, keywords, urgent=True, emergency_guidance=guidance, **more)


HOUR = 60  # minutes
DAY = 24  # hours

CATEGORIES: list[dict[str, Any]] = [
    _urgent(
        ("fire", "火情", "Fire", "safety", "safety", 5, 4),
        "Anything burning: bins, vehicles, buildings.",
        "火,着火,冒烟,fire,smoke",
        "立即拨打119，远离火源。Call 119 now and keep away from the fire.",
        materials=["现场照片 Photo of the site (only if safe)"],
        service_notice="Staff are alerted at once; the fire brigade is called if you have not.",
    ),
    _urgent(
        ("gas_leak", "燃气泄漏", "Gas leak", "safety", "safety", 5, 4),
        "Smell of gas indoors or outdoors.",
        "燃气,煤气,气味,gas,smell",
        "立即离开，不要开关电器，拨打119或燃气抢修电话。Leave now, do not touch switches, call 119.",
    ),
    _urgent(
        ("water_leak", "漏水爆管", "Burst or leaking water main", "utilities", "public_works", 15, 24),
        "Water gushing from a pipe, a main or a meter.",
        "漏水,爆管,水管,leak,pipe",
        "关闭总阀（如可及）并远离积水处的电器。Close the main valve if you can.",
    ),
    _category(
        ("flooding", "积水内涝", "Flooding after rain", "utilities", "public_works", 24 * HOUR, 7 * DAY),
        "Standing water in a compound, a road or a basement after rain. Staff survey the site the next day and "
        "finish the repair within a week.",
        "积水,内涝,下雨,淹,flood,rain",
        materials=["现场照片 Photo of the water"],
        attributes=[
            _attr(
                "depth",
                "积水深度 How deep is the water?",
                "singlevaluelist",
                required=True,
                values=[
                    {"key": "ankle", "name": "脚踝 Ankle"},
                    {"key": "knee", "name": "膝盖 Knee"},
                    {"key": "deeper", "name": "更深 Deeper"},
                ],
            ),
            _attr("indoors", "是否进屋 Has it entered homes?", "singlevaluelist", order=2, values=YES_NO),
        ],
        service_notice="Site survey the next day; repair within a week.",
    ),
    _category(
        ("road", "道路破损", "Damaged road or pavement", "streets", "public_works", 24 * HOUR, 7 * DAY),
        "Potholes, broken kerbs, sunken paving.",
        "坑,路面,井盖,pothole,road",
        attributes=[
            _attr(
                "size",
                "大约多大 Roughly how big?",
                "singlevaluelist",
                values=[
                    {"key": "small", "name": "小于脸盆 Smaller than a basin"},
                    {"key": "large", "name": "大于脸盆 Larger than a basin"},
                ],
            )
        ],
    ),
    _category(
        ("streetlight", "路灯故障", "Street or stair light out", "streets", "public_works", 24 * HOUR, 3 * DAY),
        "A street light, compound light or stairwell light that does not work.",
        "路灯,楼道灯,不亮,light,lamp",
        attributes=[_attr("pole_number", "灯杆编号（如有）Pole number, if you can see one")],
    ),
    _category(
        ("rubbish", "垃圾清运", "Rubbish not collected", "sanitation", "urban_mgmt", 12 * HOUR, 2 * DAY),
        "Overflowing bins, dumped rubbish, construction waste.",
        "垃圾,清运,rubbish,bin",
    ),
    _category(
        ("greenery", "绿化养护", "Trees and green spaces", "sanitation", "urban_mgmt", 48 * HOUR, 14 * DAY),
        "Fallen branches, dead trees, overgrown verges.",
        "树,绿化,草,tree,grass",
    ),
    _category(
        ("parking", "乱停乱放", "Obstructive parking", "streets", "urban_mgmt", 24 * HOUR, 3 * DAY),
        "Vehicles blocking fire lanes, exits or pavements.",
        "停车,占道,消防通道,parking",
    ),
    _category(
        ("noise", "噪音扰民", "Noise nuisance", "neighbourhood", "grid_governance", 24 * HOUR, 3 * DAY),
        "Persistent noise from works, shops or neighbours.",
        "噪音,吵,noise",
        dedupe=False,
        attributes=[
            _attr(
                "when",
                "什么时候 When does it happen?",
                "singlevaluelist",
                values=[{"key": "day", "name": "白天 Daytime"}, {"key": "night", "name": "夜间 Night"}],
            )
        ],
    ),
    _category(
        ("neighbour_dispute", "邻里纠纷", "Neighbour dispute", "neighbourhood", "grid_governance", 24 * HOUR, 14 * DAY),
        "A disagreement the community can mediate (the silver-haired volunteers help).",
        "纠纷,调解,dispute,mediation",
        dedupe=False,
    ),
    _category(
        (
            "property_repair",
            "小区公共设施维修",
            "Compound facilities repair",
            "housing",
            "property",
            24 * HOUR,
            7 * DAY,
        ),
        "Shared facilities in a compound: doors, railings, lifts, stairs.",
        "物业,电梯,楼道,门禁,lift,stairs",
        attributes=[_attr("building", "楼号单元 Building and unit", required=True)],
    ),
    _category(
        ("elderly_care", "老人照护需求", "Elderly care need", "care", "civil_affairs", 24 * HOUR, 3 * DAY),
        "An older resident needs help: mobility aids, meals, a visit.",
        "老人,照护,拐杖,助餐,elderly,care",
        dedupe=False,
    ),
    _category(
        ("other", "其他问题", "Something else", "general", "grid_governance", 48 * HOUR, 14 * DAY),
        "Anything not listed; staff will route it.",
        "其他,other",
        dedupe=False,
    ),
]

# A few of the 27 certificates a community must not issue (不应出具证明清单), and where to go instead.
NOT_HANDLED: list[dict[str, Any]] = [
    dict(
        code="cert_kinship",
        title_zh="亲属关系证明",
        title_en="Proof of kinship",
        kind="certificate",
        go_to_zh="户籍所在地公安派出所（户口簿）或公证处",
        go_to_en="Your hukou police station, or a notary office",
        keywords="亲属,关系,kinship,relative",
    ),
    dict(
        code="cert_residence",
        title_zh="居住证明",
        title_en="Proof of residence",
        kind="certificate",
        go_to_zh="居住地公安派出所（办理居住证）",
        go_to_en="The local police station (residence permit)",
        keywords="居住,住址,residence,address",
    ),
    dict(
        code="cert_marital",
        title_zh="婚姻状况证明",
        title_en="Proof of marital status",
        kind="certificate",
        go_to_zh="民政局婚姻登记处，或政务服务网在线查询",
        go_to_en="The civil affairs marriage registry, or online",
        keywords="婚姻,未婚,单身,marital,unmarried",
    ),
    dict(
        code="cert_no_crime",
        title_zh="无犯罪记录证明",
        title_en="Certificate of no criminal record",
        kind="certificate",
        go_to_zh="公安机关（户籍地或居住地派出所）",
        go_to_en="The police (any local station)",
        keywords="犯罪,无犯罪,criminal,record",
    ),
    dict(
        code="cert_alive",
        title_zh="生存证明（领取养老金）",
        title_en="Proof of being alive (for pensions)",
        kind="certificate",
        go_to_zh="社保部门：手机人脸识别认证",
        go_to_en="Social security: face check in its app",
        keywords="生存,养老金,pension,alive",
    ),
    dict(
        code="cert_income",
        title_zh="收入证明",
        title_en="Proof of income",
        kind="certificate",
        go_to_zh="工作单位，或个人所得税APP",
        go_to_en="Your employer, or the individual income tax app",
        keywords="收入,工资,income,salary",
    ),
    dict(
        code="cert_property",
        title_zh="房产证明",
        title_en="Proof of property ownership",
        kind="certificate",
        go_to_zh="不动产登记中心",
        go_to_en="The real estate registration centre",
        keywords="房产,房屋,property",
    ),
    dict(
        code="cert_unemployed",
        title_zh="失业证明",
        title_en="Proof of unemployment",
        kind="certificate",
        go_to_zh="人社部门就业服务中心（失业登记）",
        go_to_en="The employment service centre (unemployment registration)",
        keywords="失业,无业,unemployed",
    ),
    dict(
        code="matter_lawsuit",
        title_zh="经济合同纠纷诉讼",
        title_en="Contract or debt lawsuits",
        kind="matter",
        go_to_zh="人民法院立案庭，或司法所法律援助",
        go_to_en="The people's court, or legal aid at the justice office",
        keywords="诉讼,欠款,合同,lawsuit,debt",
    ),
]

COMMUNITIES = [
    ("yunxing", "云兴街社区", "Yunxing Street", 40.0135, 112.7028, ["yunxingjie"]),
    ("dongyan", "东延路社区", "Dongyan Road", 40.0172, 112.7155, ["dongyanlu"]),
    ("yuntai", "云泰园社区", "Yuntaiyuan", 40.0098, 112.6983, ["yuntaiyuan"]),
    ("yunhe", "云和园社区", "Yunheyuan", 40.0061, 112.7090, ["yunheyuan"]),
    ("gangcheng", "港城社区", "Gangcheng", 40.0201, 112.6941, ["gangcheng-theatre", "gangcheng-xiaoqu"]),
    ("xinyuan", "新苑社区", "Xinyuan", 40.0240, 112.7052, ["xinyuan-a", "xinyuan-b"]),
    ("nanjie", "南街社区", "Nanjie (South Street)", 40.0032, 112.7011, ["nanjie-old-town"]),
]

TEMPLATES = [
    (
        "next_day_survey",
        "明日现场查看",
        "您反映的“{title}”已受理，工作人员将于明日到现场查看。"
        "We have your report “{title}”; staff will survey the site tomorrow.",
        "accept",
    ),
    (
        "fixed",
        "已处理完毕",
        "“{title}”已由{department}处理完毕，请确认并评价。"
        "“{title}” has been fixed by {department}; please confirm and rate it.",
        "resolve",
    ),
    (
        "duplicate",
        "重复反映",
        "该问题已有{reporter_count}位居民反映，已合并处理。"
        "{reporter_count} residents reported this; we handle it as one.",
        "merge",
    ),
    ("not_found_on_site", "现场未发现", "工作人员到现场未发现所述问题。Staff found nothing on site.", "reject"),
]


async def seed_catalogue(runtime: ServiceRuntime) -> None:
    async with runtime.uow() as uow:
        s = uow.session
        for code, zh, en, duties in DEPARTMENTS:
            if await s.get(Department, code) is None:
                s.add(Department(code=code, name_zh=zh, name_en=en, duties=duties, phone="0352-12345"))
        for data in CATEGORIES:
            if await s.get(Category, data["code"]) is None:
                s.add(Category(**data))
        for matter in NOT_HANDLED:
            if await s.get(NotHandledMatter, matter["code"]) is None:
                s.add(NotHandledMatter(**matter))
        for code, zh, en, lat, lng, compounds in COMMUNITIES:
            if await s.get(Community, code) is None:
                s.add(Community(code=code, name_zh=zh, name_en=en, latitude=lat, longitude=lng, compounds=compounds))
        for code, title, body, action in TEMPLATES:
            if await s.get(ReplyTemplate, code) is None:
                s.add(ReplyTemplate(code=code, title=title, body=body, action=action))
        await uow.commit()
    invalidate_cache()  # intake may have cached "no such category" before the catalogue existed
