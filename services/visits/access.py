"""Who sees what. Grid workers: the households of their active assignments (a whole compound or single
buildings). Staff: their communities/compounds (token scopes). Residents: their own household. Admin: all.

Objects outside the caller's reach answer 404, so their existence does not leak. The ``Viewer`` carries what the
token lacks (the grid worker's assignments, the resident's household); the predicates below take it, and the use
cases answer through ``minsheng.platform.access`` (``visible_or_404``, ``ensure_changeable``, ``ensure``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.platform.access import is_staff
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem
from minsheng.platform.privacy import PII_REVEAL_SCOPE
from minsheng.platform.uow import UnitOfWork
from services.visits.models import (
    GridAssignment,
    GridWorker,
    Need,
    Resident,
    ResidentStatus,
    VisitRound,
    VisitTask,
)

REVEAL_SCOPE = PII_REVEAL_SCOPE
AUDIT_SCOPE = "pii:audit"


@dataclass
class Viewer:
    principal: Principal
    worker: GridWorker | None = None
    whole_compounds: set[str] = field(default_factory=set)
    buildings: set[UUID] = field(default_factory=set)
    resident: Resident | None = None

    @property
    def sub(self) -> str:
        return self.principal.sub

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def is_staff(self) -> bool:
        return is_staff(self.principal)

    @property
    def is_worker(self) -> bool:
        return self.worker is not None

    @property
    def name(self) -> str | None:
        return self.principal.name or (self.worker.name if self.worker else None)

    def staff_covers(self, community: str | None, compound: str | None = None) -> bool:
        return self.is_staff and self.principal.covers(community, compound)

    def worker_covers(self, compound: str, building_id: UUID | None) -> bool:
        return self.worker is not None and (compound in self.whole_compounds or building_id in self.buildings)

    def covers(self, community: str, compound: str, building_id: UUID | None, household_id: UUID | None = None) -> bool:
        """May this caller see an object at this place? (Residents: only their own household.)"""
        if self.staff_covers(community, compound) or self.worker_covers(compound, building_id):
            return True
        return self.resident is not None and household_id is not None and self.resident.household_id == household_id

    def may_write(self, community: str, compound: str, building_id: UUID | None) -> bool:
        """Staff in scope, or the grid worker assigned there."""
        return self.staff_covers(community, compound) or self.worker_covers(compound, building_id)

    def may_reveal(self) -> bool:
        return self.is_admin or REVEAL_SCOPE in self.principal.scopes

    def may_read_audit(self) -> bool:
        return self.is_admin or AUDIT_SCOPE in self.principal.scopes

    def clause(self, model: Any, *, household_col: Any = None) -> Any:
        """A WHERE clause limiting ``model`` (with community/compound/building_id columns) to what the caller
        may see. ``household_col`` lets residents see rows of their own household."""
        if self.is_admin:
            return sa.true()
        parts: list[Any] = []
        if self.is_staff:
            communities = self.principal.scoped_values("community")
            compounds = self.principal.scoped_values("compound")
            if communities:
                parts.append(col(model.community).in_(sorted(communities)))
            if compounds:
                parts.append(col(model.compound).in_(sorted(compounds)))
        if self.worker is not None:
            if self.whole_compounds:
                parts.append(col(model.compound).in_(sorted(self.whole_compounds)))
            if self.buildings:
                parts.append(col(model.building_id).in_(sorted(self.buildings, key=str)))
        if self.resident is not None and household_col is not None:
            parts.append(household_col == self.resident.household_id)
        return sa.or_(*parts) if parts else sa.false()


async def worker_by_subject(uow: UnitOfWork, subject: str) -> GridWorker | None:
    found = await uow.session.execute(select(GridWorker).where(GridWorker.subject == subject))
    return found.scalar_one_or_none()


async def active_assignments(uow: UnitOfWork, worker_id: UUID) -> list[GridAssignment]:
    rows = await uow.session.execute(
        select(GridAssignment).where(GridAssignment.worker_id == worker_id, col(GridAssignment.ended_at).is_(None))
    )
    return list(rows.scalars())


async def viewer_of(uow: UnitOfWork, principal: Principal) -> Viewer:
    viewer = Viewer(principal)
    if principal.is_admin:
        return viewer
    if principal.has(Role.grid_worker):
        # The worker and their active assignments in one round trip (this runs on every request).
        rows = (
            await uow.session.execute(
                select(GridWorker, GridAssignment)
                .outerjoin(
                    GridAssignment,
                    sa.and_(col(GridAssignment.worker_id) == GridWorker.id, col(GridAssignment.ended_at).is_(None)),
                )
                .where(GridWorker.subject == principal.sub, col(GridWorker.active).is_(True))
            )
        ).all()
        for worker, a in rows:
            viewer.worker = worker
            if a is None:
                continue
            if a.building_id is None:
                viewer.whole_compounds.add(a.compound)
            else:
                viewer.buildings.add(a.building_id)
    if principal.has(Role.resident):
        found = await uow.session.execute(
            select(Resident).where(Resident.account_subject == principal.sub, Resident.status == ResidentStatus.active)
        )
        viewer.resident = found.scalar_one_or_none()
    return viewer


def require_worker_registered(viewer: Viewer) -> None:
    if viewer.principal.has(Role.grid_worker) and viewer.worker is None and not viewer.is_staff:
        raise Problem(
            403,
            "grid_worker_not_registered",
            "Not registered as a grid worker",
            "Ask community staff to register your account (POST /visits/grid-workers).",
        )


class Placed(Protocol):
    """Anything that sits at a place: a household, resident, visit, need, visit task …"""

    @property
    def community(self) -> str: ...
    @property
    def compound(self) -> str: ...
    @property
    def building_id(self) -> UUID | None: ...


def sees(viewer: Viewer, thing: Placed, household_id: UUID | None = None) -> bool:
    """``household_id`` lets a resident see what belongs to their own household."""
    return viewer.covers(thing.community, thing.compound, thing.building_id, household_id)


def writes(viewer: Viewer, thing: Placed) -> bool:
    return viewer.may_write(thing.community, thing.compound, thing.building_id)


def supervises(viewer: Viewer, thing: Placed) -> bool:
    """Community staff of the place (not its grid worker)."""
    return viewer.staff_covers(thing.community, thing.compound)


def lives_in(viewer: Viewer, household_id: UUID) -> bool:
    """A resident of this household (their own account, linked by staff)."""
    return viewer.resident is not None and viewer.resident.household_id == household_id


def is_worker(viewer: Viewer, worker_id: UUID | None) -> bool:
    return viewer.worker is not None and viewer.worker.id == worker_id


def sees_worker(viewer: Viewer, worker: GridWorker) -> bool:
    """Staff of the worker's community, and the worker themself."""
    return viewer.staff_covers(worker.community) or is_worker(viewer, worker.id)


def sees_task(viewer: Viewer, task: VisitTask) -> bool:
    return sees(viewer, task) or is_worker(viewer, task.assigned_worker_id)


def sees_round(viewer: Viewer, rnd: VisitRound) -> bool:
    """District-wide rounds are for everyone; a community's for its staff and grid workers."""
    if viewer.is_admin or rnd.community is None or viewer.staff_covers(rnd.community):
        return True
    return viewer.worker is not None and viewer.worker.community == rnd.community


def reaches_need(viewer: Viewer, need: Need) -> bool:
    return need.owner == viewer.sub or sees(viewer, need, need.household_id)


def works_on_need(viewer: Viewer, need: Need) -> bool:
    """The ledger owner, or staff / the assigned grid worker where the need is."""
    return need.owner == viewer.sub or writes(viewer, need)
