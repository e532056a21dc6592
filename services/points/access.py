"""Who may see and do what in points. Staff hold ``staff`` with ``community:<code>`` / ``compound:<code>`` scopes
and reach the riders, teams, merchants, hazard reports and tasks of their places; admin reaches everything.
Riders reach their own records, the open tasks and the ones they hold, and every team (leaderboards).

Named predicates only; the use cases turn a "no" into the answer through ``minsheng.platform.access``
(``visible_or_404`` for things, ``ensure(places_in(...), outside_scope(...))`` for creating or moving into a place).
"""

from __future__ import annotations

from minsheng.platform.access import is_staff
from minsheng.platform.auth import Principal, Role
from services.points.models import HazardReport, Merchant, Rider, Task, TaskStatus, Team


def places_in(who: Principal, community: str | None, compound: str | None = None) -> bool:
    """May the caller create something in (or move something to) this community / compound?"""
    return who.covers(community, compound)


def covers_rider(who: Principal, rider: Rider) -> bool:
    return who.covers(rider.community)


def covers_merchant(who: Principal, merchant: Merchant) -> bool:
    return who.covers(merchant.community)


def covers_report(who: Principal, report: HazardReport) -> bool:
    return who.covers(report.community, report.compound)


def filed_report(rider: Rider, report: HazardReport) -> bool:
    return report.rider_id == rider.id


def sees_team(who: Principal, team: Team) -> bool:
    """Riders see every team (the leaderboards); staff the teams of their communities and those of none."""
    return who.has(Role.rider) or team.community is None or who.covers(team.community)


def holds_task(rider: Rider, task: Task) -> bool:
    return task.claimed_by == rider.id


def sees_task(who: Principal, task: Task, rider: Rider | None) -> bool:
    """Staff: the tasks of their places. Riders: the open tasks and those they hold or held."""
    if is_staff(who):
        return who.covers(task.community, task.compound)
    if rider is None:
        return False
    return task.status == TaskStatus.open or holds_task(rider, task)


def sees_task_address(who: Principal, task: Task, rider: Rider | None) -> bool:
    """The delivery address and proof (an elder's door) are for staff and the rider who claimed the task."""
    return is_staff(who) or (rider is not None and holds_task(rider, task))
