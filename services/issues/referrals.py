"""Referrals: problems other services hand over. A rider's hazard report (points' ``HazardReported``) and a
need a grid worker could not solve on the spot (visits' ``NeedEscalated``) become issues, or join the open
issue they duplicate. Idempotent on the report. Called by ``handlers``; never commits."""

from __future__ import annotations

from minsheng.contracts.base import Origin
from minsheng.contracts.points import HazardReported
from minsheng.contracts.visits import NeedEscalated
from minsheng.platform.uow import UnitOfWork
from services.issues import config
from services.issues.access import IssueLike
from services.issues.catalogue import category_or_default, resolve_community
from services.issues.duplicates import dedupe_lock_keys, dedupes, issue_for_origin
from services.issues.intake import Intake, intake
from services.issues.models import Channel

HAZARD_TITLES = {
    "fire": "Fire reported by a rider",
    "gas_leak": "Gas leak reported by a rider",
    "water_leak": "Water leak reported by a rider",
    "road": "Road hazard reported by a rider",
    "other": "Hazard reported by a rider",
}


async def intake_hazard_report(uow: UnitOfWork, report: HazardReported) -> IssueLike | None:
    """A rider's hazard report becomes an issue (urgent for fire, gas and water leaks), or joins the open issue
    it duplicates. Idempotent on the report."""
    origin = Origin(service="points", kind="hazard_report", id=str(report.report_id))
    cat = await category_or_default(uow, report.category, urgent=report.urgent)
    takes_locks = dedupes(cat, report.latitude, report.longitude)
    keys = (
        dedupe_lock_keys(cat.code, report.latitude, report.longitude, config.get().dedupe_radius_m)
        if takes_locks and report.latitude is not None and report.longitude is not None
        else None
    )
    if await issue_for_origin(uow, origin, lock_keys=keys) is not None:
        return None
    community = await resolve_community(uow, report.community, report.latitude, report.longitude, strict=False)
    issue, _ = await intake(
        uow,
        Intake(
            category=cat,
            title=HAZARD_TITLES.get(report.category, HAZARD_TITLES["other"]),
            description=report.description,
            channel=Channel.rider,
            reporter=f"rider:{report.rider_id}",
            latitude=report.latitude,
            longitude=report.longitude,
            address=report.address,
            community=community,
            compound=report.compound,
            origin=origin,
            urgent=report.urgent,
            photo_urls=report.photo_urls,
            actor_role="rider",
        ),
        locked=takes_locks,
    )
    return issue


async def intake_need(uow: UnitOfWork, need: NeedEscalated) -> IssueLike | None:
    """A visit need the community could not solve on the spot. Idempotent on the need."""
    origin = Origin(service="visits", kind="need", id=str(need.need_id))
    if await issue_for_origin(uow, origin) is not None:
        return None
    cat = await category_or_default(uow, need.category, urgent=need.urgency == "urgent")
    issue, _ = await intake(
        uow,
        Intake(
            category=cat,
            title=need.title,
            description=need.description,
            channel=Channel.grid_worker,
            reporter=need.escalated_by,
            latitude=need.latitude,
            longitude=need.longitude,
            address=need.address,
            community=need.community,
            compound=need.compound,
            origin=origin,
            urgent=need.urgency == "urgent",
            is_public=False,  # a household's need is not for the public list
            attributes={"urgency": need.urgency},
            actor_role="grid_worker",
        ),
    )
    return issue
