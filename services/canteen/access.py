"""Who may see and do what. Objects outside the caller's scope answer 404 (their existence does not leak).

- Canteen staff hold ``staff`` with scope ``canteen:<id or code>``: their canteen only.
- Community / sub-district staff hold ``staff`` with ``community:<slug>``: canteens in or serving it, the
  diners living in it, its settlements. Admin (or scope ``*``) covers everything.
- Grid workers (``grid_worker``, community/compound scope) register and look after diners in their area.
- Residents see the diners they are (``diners.subject``) or family of, and those diners' orders.

Named predicates; the use cases answer a "no" through ``minsheng.platform.access`` (``visible_or_404``,
``ensure_visible``, ``ensure(manages(who, canteen), Problem(403, …))``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from minsheng.platform.access import is_staff
from minsheng.platform.auth import Principal, Role
from services.canteen.models import Canteen, Diner, FamilyMember, Order


class Relation(StrEnum):
    self_ = "self"
    family = "family"
    staff = "staff"


class CanteenLike(Protocol):
    """What ``manages`` looks at: a ``Canteen`` or a Core row with these columns."""

    @property
    def id(self) -> Any: ...
    @property
    def code(self) -> str: ...
    @property
    def community(self) -> str: ...
    @property
    def communities(self) -> Sequence[str]: ...


def staff_of(who: Principal, community: str) -> bool:
    """Staff whose scope covers this community (admin: every community)."""
    return is_staff(who) and who.covers(community)


def has_place_scope(who: Principal) -> bool:
    """Holds a canteen or community scope (or is admin): may see the care signals of some canteens."""
    return who.is_admin or bool(who.scoped_values("canteen") or who.scoped_values("community"))


def manages(who: Principal, canteen: CanteenLike) -> bool:
    """Staff of this canteen, or staff whose community it sits in or serves."""
    if who.is_admin:
        return True
    if not who.has(Role.staff):
        return False
    if {str(canteen.id), canteen.code} & who.scoped_values("canteen"):
        return True
    return any(who.covers(c) for c in {canteen.community, *canteen.communities})


def looks_after(who: Principal, diner: Diner, home: Canteen | None) -> bool:
    """Staff or grid workers responsible for this diner (their home canteen or where they live)."""
    if who.is_admin:
        return True
    if not who.has(Role.staff, Role.grid_worker):
        return False
    if home is not None and who.has(Role.staff) and {str(home.id), home.code} & who.scoped_values("canteen"):
        return True
    return who.covers(diner.community, diner.compound)


def may_move_to(who: Principal, diner: Diner, home: Canteen) -> bool:
    """A diner's new home canteen: one the caller manages, or any when the caller covers where the diner lives."""
    return manages(who, home) or who.covers(diner.community, diner.compound)


def relation(
    who: Principal, diner: Diner, home: Canteen | None, family: list[FamilyMember]
) -> tuple[Relation | None, FamilyMember | None]:
    if diner.subject is not None and diner.subject == who.sub:
        return Relation.self_, None
    member = next((m for m in family if m.subject == who.sub), None)
    if member is not None:
        return Relation.family, member
    if looks_after(who, diner, home):
        return Relation.staff, None
    return None, None


def sees_order(
    who: Principal, order: Order, canteen: Canteen, diner: Diner, home: Canteen | None, family: list[FamilyMember]
) -> bool:
    if manages(who, canteen):
        return True
    rel, _ = relation(who, diner, home, family)
    return rel is not None
