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


CATEGORIES: list[dict[str, Any]] = [
    dict(
        code="fire",
        name_zh="火情",
        name_en="Fire",
        group="safety",
        department="safety",
        first_response_minutes=5,
        resolution_hours=4,
        urgent=True,
        emergency_guidance="立即拨打119，远离火源。Call 119 now and keep away from the fire.",
        description="Anything burning: bins, vehicles, buildings.",
        keywords="火,着火,冒烟,fire,smoke",
        materials=["现场照片 Photo of the site (only if safe)"],
        service_notice="Staff are alerted at once; the fire brigade is called if you have not.",
    ),
    dict(
        code="gas_leak",
        name_zh="燃气泄漏",
        name_en="Gas leak",
        group="safety",
        department="safety",
        first_response_minutes=5,
        resolution_hours=4,
        urgent=True,
        emergency_guidance="立即离开，不要开关电器，拨打119或燃气抢修电话。Leave now, do not touch switches, call 119.",
        description="Smell of gas indoors or outdoors.",
        keywords="燃气,煤气,气味,gas,smell",
    ),
    dict(
        code="water_leak",
        name_zh="漏水爆管",
        name_en="Burst or leaking water main",
        group="utilities",
        department="public_works",
        first_response_minutes=15,
        resolution_hours=24,
        urgent=True,
        emergency_guidance="关闭总阀（如可及）并远离积水处的电器。Close the main valve if you can.",
        description="Water gushing from a pipe, a main or a meter.",
        keywords="漏水,爆管,水管,leak,pipe",
    ),
    dict(
        code="flooding",
        name_zh="积水内涝",
        name_en="Flooding after rain",
        group="utilities",
        department="public_works",
        first_response_minutes=24 * 60,
        resolution_hours=7 * 24,
        description="Standing water in a compound, a road or a basement after rain. Staff survey the site the "
        "next day and finish the repair within a week.",
        keywords="积水,内涝,下雨,淹,flood,rain",
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
    dict(
        code="road",
        name_zh="道路破损",
        name_en="Damaged road or pavement",
        group="streets",
        department="public_works",
        first_response_minutes=24 * 60,
        resolution_hours=7 * 24,
        description="Potholes, broken kerbs, sunken paving.",
        keywords="坑,路面,井盖,pothole,road",
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
    dict(
        code="streetlight",
        name_zh="路灯故障",
        name_en="Street or stair light out",
        group="streets",
        department="public_works",
        first_response_minutes=24 * 60,
        resolution_hours=3 * 24,
        description="A street light, compound light or stairwell light that does not work.",
        keywords="路灯,楼道灯,不亮,light,lamp",
        attributes=[_attr("pole_number", "灯杆编号（如有）Pole number, if you can see one")],
    ),
    dict(
        code="rubbish",
        name_zh="垃圾清运",
        name_en="Rubbish not collected",
        group="sanitation",
        department="urban_mgmt",
        first_response_minutes=12 * 60,
        resolution_hours=48,
        description="Overflowing bins, dumped rubbish, construction waste.",
        keywords="垃圾,清运,rubbish,bin",
    ),
    dict(
        code="greenery",
        name_zh="绿化养护",
        name_en="Trees and green spaces",
        group="sanitation",
        department="urban_mgmt",
        first_response_minutes=48 * 60,
        resolution_hours=14 * 24,
        description="Fallen branches, dead trees, overgrown verges.",
        keywords="树,绿化,草,tree,grass",
    ),
    dict(
        code="parking",
        name_zh="乱停乱放",
        name_en="Obstructive parking",
        group="streets",
        department="urban_mgmt",
        first_response_minutes=24 * 60,
        resolution_hours=72,
        description="Vehicles blocking fire lanes, exits or pavements.",
        keywords="停车,占道,消防通道,parking",
    ),
    dict(
        code="noise",
        name_zh="噪音扰民",
        name_en="Noise nuisance",
        group="neighbourhood",
        department="grid_governance",
        first_response_minutes=24 * 60,
        resolution_hours=72,
        dedupe=False,
        description="Persistent noise from works, shops or neighbours.",
        keywords="噪音,吵,noise",
        attributes=[
            _attr(
                "when",
                "什么时候 When does it happen?",
                "singlevaluelist",
                values=[{"key": "day", "name": "白天 Daytime"}, {"key": "night", "name": "夜间 Night"}],
            )
        ],
    ),
    dict(
        code="neighbour_dispute",
        name_zh="邻里纠纷",
        name_en="Neighbour dispute",
        group="neighbourhood",
        department="grid_governance",
        first_response_minutes=24 * 60,
        resolution_hours=14 * 24,
        dedupe=False,
        description="A disagreement the community can mediate (the silver-haired volunteers help).",
        keywords="纠纷,调解,dispute,mediation",
    ),
    dict(
        code="property_repair",
        name_zh="小区公共设施维修",
        name_en="Compound facilities repair",
        group="housing",
        department="property",
        first_response_minutes=24 * 60,
        resolution_hours=7 * 24,
        description="Shared facilities in a compound: doors, railings, lifts, stairs.",
        keywords="物业,电梯,楼道,门禁,lift,stairs",
        attributes=[_attr("building", "楼号单元 Building and unit", required=True)],
    ),
    dict(
        code="elderly_care",
        name_zh="老人照护需求",
        name_en="Elderly care need",
        group="care",
        department="civil_affairs",
        first_response_minutes=24 * 60,
        resolution_hours=72,
        dedupe=False,
        description="An older resident needs help: mobility aids, meals, a visit.",
        keywords="老人,照护,拐杖,助餐,elderly,care",
    ),
    dict(
        code="other",
        name_zh="其他问题",
        name_en="Something else",
        group="general",
        department="grid_governance",
        first_response_minutes=48 * 60,
        resolution_hours=14 * 24,
        dedupe=False,
        description="Anything not listed; staff will route it.",
        keywords="其他,other",
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
