"""The duty roster: which staff member is on duty for a community (or the whole district, ``*``) and when. An
urgent issue reaches every person on duty for its community and for the district at that moment, besides the
duty group's WeCom robot (rule ``urgent_issue_on_duty``, audience ``on_duty_staff``).

Staff keep it through ``/notify/duty-roster``: staff of a community manage its shifts, the district's (``*``)
are an admin's. A phone entered with a shift is encrypted at rest and only ever shown masked; the person's
verified phone from identity's account events is used before it. Each function takes a unit of work and never
commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import forbidden
from minsheng.platform.auth import Principal
from minsheng.platform.errors import invalid, not_found
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import cipher_for, mask_phone
from minsheng.platform.uow import UnitOfWork
from services.notify.access import DISTRICT, manages_shifts_of, sees_shifts_of, visible_shifts
from services.notify.models import DutyShift, DutyShiftCreate, DutyShiftPublic, Recipient
from services.notify.sealing import seal_shift_phone

_NEWEST_FIRST = Keyset((DutyShift.id,), kinds=(UUID,))


def _on_duty(shift: DutyShift, at: datetime) -> bool:
    return shift.starts_at <= at and (shift.ends_at is None or shift.ends_at > at)


def _covering(at: Any) -> sa.ColumnElement[bool]:
    """``_on_duty`` in SQL: the shifts covering ``at`` (a time, or a bind parameter in a cached statement)."""
    ends = col(DutyShift.ends_at)
    return sa.and_(col(DutyShift.starts_at) <= at, sa.or_(ends.is_(None), ends > at))


def public(shift: DutyShift, at: datetime | None = None) -> DutyShiftPublic:
    out = DutyShiftPublic.model_validate(shift, from_attributes=True)
    out.on_duty = _on_duty(shift, at or utcnow())
    return out


def _national(phone: str) -> str:
    """13912345678 from +8613912345678, 8613912345678 or 13912345678."""
    return phone[-11:]


async def add_shift(uow: UnitOfWork, who: Principal, body: DutyShiftCreate) -> DutyShift:
    if not manages_shifts_of(who, body.community):
        raise forbidden(
            _t("You may not keep the duty roster of {community}.", community=body.community)
            if body.community != DISTRICT
            else _t("Only an administrator keeps the district's duty roster.")
        )
    starts = body.starts_at or utcnow()
    if body.ends_at is not None and body.ends_at <= starts:
        raise invalid(
            "duty_shift_ends_before_start",
            "Invalid duty shift",
            "A duty shift must end after it starts.",
            field="ends_at",
            message="must be after starts_at",
        )
    known = await uow.session.get(Recipient, body.account_id)
    if known is not None and not {"staff", "admin"} & set(known.roles):
        # identity told notify who this is, and it is not staff (an account identity has not announced yet is
        # taken on trust: the roster must not wait for the event)
        raise invalid(
            "duty_shift_not_staff",
            "Invalid duty shift",
            "Only a staff account can be put on duty.",
            field="account_id",
            message="not a staff account",
        )
    phone = _national(body.phone) if body.phone else None
    shift = DutyShift(
        community=body.community,
        account_id=body.account_id,
        name=body.name,
        starts_at=starts,
        ends_at=body.ends_at,
        phone_masked=mask_phone(phone),
        created_by=who.sub,
    )
    shift.phone_enc = seal_shift_phone(cipher_for(uow.db), shift.id, phone) if phone else None
    uow.session.add(shift)
    return shift


async def shifts_page(
    uow: UnitOfWork,
    who: Principal,
    page: PageRequest,
    *,
    community: str | None = None,
    on_duty: bool | None = None,
) -> Page[DutyShiftPublic]:
    """The shifts the caller may see (their communities' and the district's), newest first."""
    query = select(DutyShift)
    if (visible := visible_shifts(who)) is not None:
        query = query.where(visible)
    if community is not None:
        query = query.where(DutyShift.community == community)
    now = utcnow()
    if on_duty is not None:
        current = _covering(now)
        query = query.where(current if on_duty else sa.not_(current))
    shifts = await keyset_page(uow.session, query, _NEWEST_FIRST, page)
    return shifts.map(lambda shift: public(shift, now))


async def remove_shift(uow: UnitOfWork, who: Principal, shift_id: UUID) -> None:
    shift = await uow.session.get(DutyShift, shift_id)
    if shift is None or not sees_shifts_of(who, shift.community):
        raise not_found("duty_shift", shift_id)
    if not manages_shifts_of(who, shift.community):
        raise forbidden(_t("Only an administrator keeps the district's duty roster."))
    await uow.session.delete(shift)


_ON_DUTY = (
    select(DutyShift)
    .where(
        col(DutyShift.community).in_(sa.bindparam("communities", expanding=True)),
        _covering(sa.bindparam("at")),
    )
    .order_by(col(DutyShift.starts_at), col(DutyShift.id))
)


async def on_duty(uow: UnitOfWork, community: str | None, at: datetime) -> list[DutyShift]:
    """The shifts covering ``at`` for ``community`` and for the district: one query."""
    communities = [DISTRICT] if not community or community == DISTRICT else [community, DISTRICT]
    rows = await uow.session.execute(_ON_DUTY, {"communities": communities, "at": at})
    return list(rows.scalars())
