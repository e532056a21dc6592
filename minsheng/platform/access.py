"""The one access-policy style every service follows.

A service's ``access.py`` holds named predicates — plain functions that answer "may this caller …?" with a
bool (``covers_rider(who, rider)``, ``manages(who, issue)``) and know nothing of HTTP. A use case asks them
through the helpers here, which turn a "no" into the answer every service gives:

- something outside the caller's reach is a **404** as if it did not exist (``visible_or_404``,
  ``ensure_visible``): its existence does not leak;
- something the caller may see but not do is a **403** with a stable code: ``ensure(allowed, problem)`` with
  ``outside_scope(detail)`` (creating in or moving to a place not theirs), ``forbidden(detail)``, ``read_only(what)``
  or a service's own problem; ``ensure_changeable`` picks between the 404 and the 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, not_found
from minsheng.platform.i18n import Message, Term, _t

T = TypeVar("T")


def is_staff(who: Principal) -> bool:
    """Staff, or an admin (who may do whatever staff may)."""
    return who.is_admin or who.has(Role.staff)


def visible_or_404(found: T | None, sees: Callable[[T], bool], what: str, ident: object) -> T:
    """``found`` when there is one and the caller ``sees`` it; otherwise the 404 a missing ``what`` gets."""
    if found is None or not sees(found):
        raise not_found(what, ident)
    return found


def ensure_visible(sees: bool, what: str, ident: object) -> None:
    """A 404 ``<what>_not_found`` unless the caller sees it (the same answer as for a missing one)."""
    if not sees:
        raise not_found(what, ident)


def ensure(allowed: bool, problem: Problem) -> None:
    """Raise ``problem`` (a 403 with its stable code, usually) unless ``allowed``."""
    if not allowed:
        raise problem


def ensure_changeable(sees: bool, changes: bool, what: str, ident: object) -> None:
    """A change: allowed, or a 403 ``forbidden`` when the caller sees the thing but may not change it, or the
    404 when they may not even see it."""
    if changes:
        return
    ensure_visible(sees, what, ident)
    raise read_only(what)


def outside_scope(detail: Message) -> Problem:
    """The 403 for acting on a place outside the caller's communities/compounds (creating or moving there)."""
    return Problem(403, "outside_scope", "Outside your scope", detail)


def forbidden(detail: Message) -> Problem:
    """The 403 for something the caller sees but whose role or reach does not allow this action."""
    return Problem(403, "forbidden", "Not allowed", detail)


def read_only(what: str) -> Problem:
    """The 403 for changing something the caller may only look at."""
    return forbidden(_t("You may see this {what} but not change it.", what=Term(what)))
