"""Who sees and keeps notify's duty roster (``/notify/duty-roster``). Staff see the shifts of their
communities (token scopes) and the district's (``*``), and put people on duty for their communities; only an
administrator keeps the district's shifts. Admin: all. A shift the caller does not see answers 404, one they
see but may not change 403. Everything else notify serves is the caller's own (inbox, subscriptions,
preferences) or staff-wide (deliveries, rules)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col

from minsheng.platform.auth import Principal
from services.notify.models import DutyShift

DISTRICT = "*"


def sees_shifts_of(who: Principal, community: str) -> bool:
    return who.is_admin or community == DISTRICT or who.covers(community=community)


def manages_shifts_of(who: Principal, community: str) -> bool:
    return who.is_admin if community == DISTRICT else who.covers(community=community)


def visible_shifts(who: Principal) -> sa.ColumnElement[bool] | None:
    """The shifts ``who`` sees (their communities' and the district's), as a condition; None: all of them."""
    if who.is_admin:
        return None
    return col(DutyShift.community).in_([DISTRICT, *sorted(who.scoped_values("community"))])
