"""Carpet-style rounds (地毯式走访): starting, reading and listing them (their progress is in ``coverage``)."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import ensure, ensure_visible, forbidden, visible_or_404
from minsheng.platform.errors import invalid_field
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.uow import UnitOfWork
from services.visits.access import Viewer, sees_round
from services.visits.models import RoundCreate, VisitRound


async def create_round(uow: UnitOfWork, viewer: Viewer, body: RoundCreate) -> VisitRound:
    if body.ends_on < body.starts_on:
        raise invalid_field("round_ends_before_start", "ends_on", "A round ends on or after the day it starts.")
    ensure(
        body.community is not None or viewer.is_admin,
        forbidden("Only district administrators start a district-wide round."),
    )
    if body.community is not None:
        ensure_visible(viewer.staff_covers(body.community), "community", body.community)
    rnd = VisitRound(**body.model_dump(), created_by=viewer.sub)
    uow.session.add(rnd)
    return rnd


async def get_round(uow: UnitOfWork, viewer: Viewer, round_id: UUID) -> VisitRound:
    rnd = await uow.session.get(VisitRound, round_id)
    return visible_or_404(rnd, lambda r: sees_round(viewer, r), "round", round_id)


async def list_rounds(
    uow: UnitOfWork, viewer: Viewer, *, page: PageRequest, community: str | None = None
) -> Page[VisitRound]:
    query = select(VisitRound)
    if not viewer.is_admin:
        mine = viewer.principal.scoped_values("community") if viewer.is_staff else set()
        if viewer.worker is not None:
            mine.add(viewer.worker.community)
        query = query.where(sa.or_(col(VisitRound.community).is_(None), col(VisitRound.community).in_(sorted(mine))))
    if community:
        query = query.where(VisitRound.community == community)
    latest_first = Keyset((VisitRound.starts_on, VisitRound.id), kinds=(date, UUID))
    return await keyset_page(uow.session, query, latest_first, page)
