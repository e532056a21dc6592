"""Demo data (``minsheng run --demo``): the catalogue (``demo_catalogue.py``) and a modest history of issues
in its communities. Idempotent: what exists is left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from minsheng.platform.ids import utcnow
from minsheng.platform.service import ServiceRuntime
from services.issues.demo_catalogue import CATEGORIES, COMMUNITIES, seed_catalogue
from services.issues.models import (
    Issue,
    IssueAssignment,
    IssueReporter,
    IssueStatus,
    TimelineEntry,
)

# (community, compound, category, title, status, days ago, reporter)
HISTORY = [
    ("yuntai", "yuntaiyuan", "flooding", "雨后小区积水严重", IssueStatus.confirmed, 40, "demo-jiaona"),
    (
        "yuntai",
        "yuntaiyuan",
        "elderly_care",
        "赵奶奶腿伤行动不便，需要拐杖",
        IssueStatus.confirmed,
        35,
        "demo-gw-changhong",
    ),
    ("yunxing", "yunxingjie", "streetlight", "3号楼楼道灯不亮", IssueStatus.resolved, 6, "demo-resident-1"),
    ("yunxing", "yunxingjie", "rubbish", "垃圾桶满溢无人清运", IssueStatus.in_progress, 2, "demo-resident-2"),
    ("dongyan", "dongyanlu", "road", "东延路人行道塌陷", IssueStatus.assigned, 4, "demo-resident-3"),
    ("dongyan", "dongyanlu", "parking", "消防通道被占用", IssueStatus.confirmed, 20, "demo-resident-4"),
    ("yunhe", "yunheyuan", "property_repair", "单元门禁损坏", IssueStatus.closed_unresolved, 30, "demo-resident-5"),
    ("yunhe", "yunheyuan", "noise", "夜间施工噪音", IssueStatus.rejected, 12, "demo-resident-6"),
    ("gangcheng", "gangcheng-theatre", "fire", "港城剧院旁垃圾桶起火", IssueStatus.confirmed, 25, "demo-rider-fan"),
    ("gangcheng", "gangcheng-xiaoqu", "greenery", "大风刮断树枝", IssueStatus.accepted, 1, "demo-patrol-1"),
    ("xinyuan", "xinyuan-a", "water_leak", "小区主水管爆裂", IssueStatus.resolved, 3, "demo-resident-7"),
    (
        "xinyuan",
        "xinyuan-b",
        "neighbour_dispute",
        "楼上漏水引发邻里矛盾",
        IssueStatus.in_progress,
        5,
        "demo-resident-8",
    ),
    ("nanjie", "nanjie-old-town", "road", "老街井盖缺失", IssueStatus.submitted, 0, "demo-resident-9"),
    ("nanjie", "nanjie-old-town", "other", "希望增设休息座椅", IssueStatus.redirected, 15, "demo-resident-10"),
]

PATH = {
    IssueStatus.submitted: [],
    IssueStatus.accepted: ["accepted"],
    IssueStatus.assigned: ["accepted", "assigned"],
    IssueStatus.in_progress: ["accepted", "assigned", "in_progress"],
    IssueStatus.resolved: ["accepted", "assigned", "in_progress", "resolved"],
    IssueStatus.confirmed: ["accepted", "assigned", "in_progress", "resolved", "confirmed"],
    IssueStatus.closed_unresolved: ["accepted", "assigned", "closed_unresolved"],
    IssueStatus.rejected: ["rejected"],
    IssueStatus.redirected: ["redirected"],
}


async def seed_history(runtime: ServiceRuntime) -> None:
    now = utcnow()
    coords = {c[0]: (c[3], c[4]) for c in COMMUNITIES}
    cats = {c["code"]: c for c in CATEGORIES}
    async with runtime.uow() as uow:
        s = uow.session
        seeded = (await s.execute(select(Issue.id).where(col(Issue.reporter).like("demo-%")).limit(1))).first()
        if seeded is not None:
            return
        for n, (community, compound, category, title, status, days, reporter) in enumerate(HISTORY):
            cat = cats[category]
            created = now - timedelta(days=days, hours=n % 5)
            lat, lng = coords[community]
            channel = (
                "rider"
                if reporter.startswith("demo-rider")
                else "patrol"
                if "patrol" in reporter
                else "grid_worker"
                if "-gw-" in reporter
                else "resident"
            )
            issue = Issue(
                title=title,
                description=title,
                category=category,
                community=community,
                compound=compound,
                latitude=lat + 0.0007 * n,
                longitude=lng - 0.0005 * n,
                address=f"{compound}",
                channel=channel,
                urgent=cat.get("urgent", False),
                reporter=reporter,
                created_at=created,
                updated_at=created,
                first_response_due_at=created + timedelta(minutes=cat["first_response_minutes"]),
                resolution_due_at=created + timedelta(hours=cat["resolution_hours"]),
                departments=[cat["department"]],
                is_public=category != "elderly_care",
            )
            s.add(issue)
            s.add(IssueReporter(issue_id=issue.id, subject=reporter, channel=channel, created_at=created))
            s.add(TimelineEntry(issue_id=issue.id, action="submitted", actor=reporter, actor_role=channel, at=created))
            at = created
            for step in PATH[status]:
                at = min(now, at + timedelta(hours=2 if step == "accepted" else 20))
                if step == "accepted":
                    issue.first_responded_at = at
                if step == "assigned":
                    s.add(IssueAssignment(issue_id=issue.id, department=cat["department"], lead=True, assigned_at=at))
                if step == "resolved":
                    issue.resolved_at = issue.closed_at = at
                    issue.status_note = "已处理完毕 Fixed"
                if step == "confirmed":
                    issue.confirmed_at = at
                    issue.rating = 5 if n % 2 == 0 else 4
                if step in ("rejected", "redirected", "closed_unresolved"):
                    issue.closed_at = at
                    issue.first_responded_at = issue.first_responded_at or at
                    issue.status_note = {
                        "rejected": "现场未发现 Nothing found on site",
                        "redirected": "Not handled here: 县住建局 County housing bureau",
                        "closed_unresolved": "业主拒绝入户 The owner refused access",
                    }[step]
                    if step == "redirected":
                        issue.redirect_to = "县住建局 County housing bureau"
                s.add(
                    TimelineEntry(
                        issue_id=issue.id,
                        action=step,
                        actor="demo-staff" if step != "confirmed" else reporter,
                        actor_role="staff" if step != "confirmed" else channel,
                        at=at,
                        data={"rating": issue.rating} if step == "confirmed" else {},
                    )
                )
            issue.status = status
            issue.updated_at = at
        await uow.commit()


async def seed_demo(runtime: ServiceRuntime) -> None:
    await seed_catalogue(runtime)
    await seed_history(runtime)
