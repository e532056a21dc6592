"""Use cases of the visits service: places, residents, grid workers, visiting policies and personal data.
They take a unit of work and never commit: the caller does, once. (Visits, tasks and rounds live in
``visiting``; the needs ledger in ``ledger``; the happiness bill and coverage figures in ``reports``.)"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.visits import ResidentStatusChanged
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.i18n import Term, _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.privacy import FieldCipher, field_cipher, mask_id_number, open_phone, seal_phone_on
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings
from services.visits import cadence, idcard, linking, schedule
from services.visits.access import Viewer, active_assignments, ensure_sees, ensure_writes
from services.visits.config import today
from services.visits.models import (
    AssignmentCreate,
    Building,
    BuildingCreate,
    CareTag,
    Community,
    CommunityCreate,
    CommunityPublic,
    Compound,
    CompoundCreate,
    GridAssignment,
    GridWorker,
    GridWorkerCreate,
    Handover,
    HandoverResult,
    Household,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdUpdate,
    Need,
    NeedNote,
    PiiAudit,
    PolicyCreate,
    PolicyUpdate,
    Resident,
    ResidentCreate,
    ResidentPublic,
    ResidentStatus,
    ResidentUpdate,
    RevealedResident,
    RevealField,
    RevealRequest,
    StatusChange,
    TaskStatus,
    VisitPolicy,
    VisitTask,
)

OPEN_NEED_STATES = ("open", "in_progress", "resolved")


def cipher_of(settings: Settings) -> FieldCipher:
    return field_cipher(settings)


def forbid(detail: str) -> Problem:
    return Problem(403, "forbidden", "Not allowed", detail)


def _after(query: Any, model: Any, cursor: str | None) -> Any:
    if cursor:
        (ident,) = decode_cursor(cursor, UUID)
        query = query.where(col(model.id) > ident)
    return query


async def _page(uow: UnitOfWork, query: Any, model: Any, limit: int, cursor: str | None) -> Page[Any]:
    query = _after(query, model, cursor).order_by(col(model.id)).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda r: encode_cursor(r.id))


# --- places -------------------------------------------------------------------------------------------------


async def create_community(uow: UnitOfWork, data: CommunityCreate) -> Community:
    if (await community_by_code(uow, data.code)) is not None:
        raise conflict("community_exists", _t("A community with code {code!r} already exists.", code=data.code))
    community = Community(**data.model_dump())
    uow.session.add(community)
    return community


async def community_by_code(uow: UnitOfWork, code: str) -> Community | None:
    return (await uow.session.execute(select(Community).where(Community.code == code))).scalar_one_or_none()


async def list_communities(uow: UnitOfWork, viewer: Viewer, *, limit: int, cursor: str | None) -> Page[CommunityPublic]:
    query = select(Community)
    if not viewer.is_admin:
        visible = set(viewer.principal.scoped_values("community")) if viewer.is_staff else set()
        compounds = set(viewer.principal.scoped_values("compound")) if viewer.is_staff else set()
        if viewer.worker is not None:
            visible.add(viewer.worker.community)
            compounds |= viewer.whole_compounds
        if compounds:
            visible.update(
                (
                    await uow.session.execute(
                        select(Compound.community).where(col(Compound.code).in_(sorted(compounds)))
                    )
                ).scalars()
            )
        query = query.where(col(Community.code).in_(sorted(visible)))
    if cursor:
        (after,) = decode_cursor(cursor, str)
        query = query.where(col(Community.code) > after)
    rows = list((await uow.session.execute(query.order_by(col(Community.code)).limit(limit + 1))).scalars())
    page = page_of(rows, limit, lambda c: encode_cursor(c.code))
    codes = [c.code for c in page.items]
    compound_counts: dict[str, int] = dict(
        (
            await uow.session.execute(
                sa.select(col(Compound.community), sa.func.count())
                .where(col(Compound.community).in_(codes))
                .group_by(col(Compound.community))
            )
        ).all()
    )
    household_counts: dict[str, int] = dict(
        (
            await uow.session.execute(
                sa.select(col(Household.community), sa.func.count())
                .where(col(Household.community).in_(codes), viewer.clause(Household))
                .group_by(col(Household.community))
            )
        ).all()
    )
    return Page[CommunityPublic](
        items=[
            CommunityPublic(
                id=c.id,
                code=c.code,
                name=c.name,
                compounds=compound_counts.get(c.code, 0),
                households=household_counts.get(c.code, 0),
            )
            for c in page.items
        ],
        next_cursor=page.next_cursor,
    )


async def compound_by_code(uow: UnitOfWork, code: str) -> Compound | None:
    return (await uow.session.execute(select(Compound).where(Compound.code == code))).scalar_one_or_none()


async def create_compound(uow: UnitOfWork, viewer: Viewer, data: CompoundCreate) -> Compound:
    community = await community_by_code(uow, data.community)
    if community is None or not viewer.staff_covers(community.code):
        raise not_found("community", data.community)
    if (await compound_by_code(uow, data.code)) is not None:
        raise conflict("compound_exists", _t("A compound with code {code!r} already exists.", code=data.code))
    compound = Compound(**data.model_dump())
    uow.session.add(compound)
    return compound


async def get_compound(uow: UnitOfWork, viewer: Viewer, code: str) -> Compound:
    compound = await compound_by_code(uow, code)
    if compound is None or not (
        viewer.staff_covers(compound.community, compound.code)
        or compound.code in viewer.whole_compounds
        or (viewer.buildings and await _has_assigned_building(uow, viewer, compound))
    ):
        raise not_found("compound", code)
    return compound


async def _has_assigned_building(uow: UnitOfWork, viewer: Viewer, compound: Compound) -> bool:
    found = await uow.session.execute(
        select(Building.id)
        .where(Building.compound == compound.code, col(Building.id).in_(list(viewer.buildings)))
        .limit(1)
    )
    return found.first() is not None


async def list_compounds(
    uow: UnitOfWork, viewer: Viewer, *, community: str | None, limit: int, cursor: str | None
) -> Page[Compound]:
    query = select(Compound)
    if not viewer.is_admin:
        parts: list[Any] = []
        if viewer.is_staff:
            parts += [
                col(Compound.community).in_(sorted(viewer.principal.scoped_values("community"))),
                col(Compound.code).in_(sorted(viewer.principal.scoped_values("compound"))),
            ]
        if viewer.worker is not None:
            assigned = set(viewer.whole_compounds)
            if viewer.buildings:
                assigned.update(
                    (
                        await uow.session.execute(
                            select(Building.compound).where(col(Building.id).in_(list(viewer.buildings)))
                        )
                    ).scalars()
                )
            parts.append(col(Compound.code).in_(sorted(assigned)))
        query = query.where(sa.or_(*parts) if parts else sa.false())
    if community:
        query = query.where(Compound.community == community)
    return await _page(uow, query, Compound, limit, cursor)


async def create_building(uow: UnitOfWork, viewer: Viewer, data: BuildingCreate) -> Building:
    compound = await compound_by_code(uow, data.compound)
    if compound is None or not viewer.staff_covers(compound.community, compound.code):
        raise not_found("compound", data.compound)
    dup = await uow.session.execute(
        select(Building.id).where(Building.compound == compound.code, Building.name == data.name)
    )
    if dup.first() is not None:
        raise conflict(
            "building_exists",
            _t("{compound} already has a building {building!r}.", compound=compound.name, building=data.name),
        )
    building = Building(**data.model_dump(), community=compound.community)
    uow.session.add(building)
    return building


async def get_building(uow: UnitOfWork, viewer: Viewer, building_id: UUID) -> Building:
    building = await uow.session.get(Building, building_id)
    if building is None or not viewer.covers(building.community, building.compound, building.id):
        raise not_found("building", building_id)
    return building


async def list_buildings(
    uow: UnitOfWork, viewer: Viewer, *, compound: str | None, limit: int, cursor: str | None
) -> Page[Building]:
    query = select(Building).where(viewer.clause(_BuildingScope))
    if compound:
        query = query.where(Building.compound == compound)
    return await _page(uow, query, Building, limit, cursor)


class _BuildingScope:
    """Buildings scope like everything else, their own id being the building."""

    community = Building.community
    compound = Building.compound
    building_id = Building.id


# --- households ---------------------------------------------------------------------------------------------


def household_public(h: Household, day: date | None = None) -> HouseholdPublic:
    public = HouseholdPublic.model_validate(h, from_attributes=True)
    public.overdue = cadence.is_overdue(h.next_due_on, day or today())
    return public


async def create_household(uow: UnitOfWork, viewer: Viewer, data: HouseholdCreate) -> Household:
    building = await uow.session.get(Building, data.building_id)
    if building is None:
        raise not_found("building", data.building_id)
    ensure_writes(viewer, "building", data.building_id, building.community, building.compound, building.id)
    dup = await uow.session.execute(
        select(Household.id).where(
            Household.building_id == building.id, Household.unit == data.unit, Household.room == data.room
        )
    )
    if (row := dup.first()) is not None:
        raise conflict("household_exists", "This door is already registered.", household_id=str(row[0]))
    compound = await compound_by_code(uow, building.compound)
    household = Household(
        **data.model_dump(),
        community=building.community,
        compound=building.compound,
        address=address_of(compound.name if compound else building.compound, building.name, data.unit, data.room),
    )
    await schedule.refresh(uow, household)
    uow.session.add(household)
    return household


def address_of(compound_name: str, building_name: str, unit: str | None, room: str) -> str:
    return " ".join(p for p in (compound_name, building_name, f"{unit}单元" if unit else None, f"{room}室") if p)


async def get_household(uow: UnitOfWork, viewer: Viewer, household_id: UUID, *, for_update: bool = False) -> Household:
    household = await uow.session.get(Household, household_id, with_for_update=for_update and uow.db.is_postgres)
    if household is None:
        raise not_found("household", household_id)
    ensure_sees(
        viewer, "household", household_id, household.community, household.compound, household.building_id, household.id
    )
    return household


async def update_household(uow: UnitOfWork, viewer: Viewer, household: Household, data: HouseholdUpdate) -> Household:
    ensure_writes(viewer, "household", household.id, household.community, household.compound, household.building_id)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        setattr(household, key, value)
    if {"unit", "room"} & changes.keys():
        building = await uow.session.get(Building, household.building_id)
        compound = await compound_by_code(uow, household.compound)
        household.address = address_of(
            compound.name if compound else household.compound,
            building.name if building else "",
            household.unit,
            household.room,
        )
    household.updated_at = utcnow()
    return household


async def list_households(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None,
    community: str | None = None,
    compound: str | None = None,
    building_id: UUID | None = None,
    tier: str | None = None,
    attention: str | None = None,
    overdue: bool | None = None,
) -> Page[Household]:
    query = select(Household).where(viewer.clause(Household, household_col=Household.id))
    if community:
        query = query.where(Household.community == community)
    if compound:
        query = query.where(Household.compound == compound)
    if building_id:
        query = query.where(Household.building_id == building_id)
    if tier:
        query = query.where(Household.tier == tier)
    if attention:
        query = query.where(Household.attention == attention)
    if overdue is True:
        query = query.where(col(Household.next_due_on) < today())
    elif overdue is False:
        query = query.where(sa.or_(col(Household.next_due_on).is_(None), col(Household.next_due_on) >= today()))
    return await _page(uow, query, Household, limit, cursor)


# --- residents ----------------------------------------------------------------------------------------------


def resident_public(r: Resident, day: date | None = None) -> ResidentPublic:
    return ResidentPublic(
        id=r.id,
        household_id=r.household_id,
        community=r.community,
        compound=r.compound,
        name=r.name,
        gender=r.gender,
        birth_date=r.birth_date,
        age=cadence.age_on(r.birth_date, day or today()) if r.birth_date else None,
        care_tags=sorted(schedule.tags_of(r.tags)),  # type: ignore[arg-type]
        mobility=r.mobility,  # type: ignore[arg-type]
        phone=r.phone,
        id_number=r.id_number_masked,
        has_health_notes=r.health_notes_enc is not None,
        status=r.status,  # type: ignore[arg-type]
        status_effective_date=r.status_effective_date,
        account_linked=r.account_subject is not None,
        created_at=r.created_at,
    )


def _checked_id_number(value: str) -> str:
    reason = idcard.problem_with(value)
    if reason is not None:
        raise Problem(
            422,
            "invalid_id_number",
            "The ID number is not valid",
            _t("id_number {reason}.", reason=Term(reason)),
            errors=[{"field": "id_number", "message": reason, "type": "value_error"}],
        )
    return idcard.normalize(value)


async def _set_id_number(uow: UnitOfWork, cipher: FieldCipher, resident: Resident, value: str) -> None:
    number = _checked_id_number(value)
    digest = cipher.lookup_hash(number)
    found = await uow.session.execute(
        select(Resident.id).where(
            col(Resident.id_number_hash).in_(cipher.lookup_hashes(number)), Resident.id != resident.id
        )
    )
    if found.first() is not None:
        raise conflict("resident_exists", "A resident with this ID number is already registered.")
    resident.id_number_enc = cipher.seal(number, "residents", "id_number_enc", resident.id)
    resident.id_number_hash = digest
    resident.id_number_masked = mask_id_number(number)
    if resident.birth_date is None:
        resident.birth_date = idcard.birth_date_of(number)


async def create_resident(uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, data: ResidentCreate) -> Resident:
    household = await get_household(uow, viewer, data.household_id, for_update=True)
    ensure_writes(viewer, "household", household.id, household.community, household.compound, household.building_id)
    resident = Resident(
        household_id=household.id,
        community=household.community,
        compound=household.compound,
        building_id=household.building_id,
        name=data.name,
        gender=data.gender,
        birth_date=data.birth_date,
        tags=schedule.store_tags(data.care_tags),
        mobility=data.mobility,
        phone=data.phone,
    )
    resident.health_notes_enc = cipher.seal(data.health_notes or None, "residents", "health_notes_enc", resident.id)
    seal_phone_on(resident, cipher)
    if data.id_number:
        await _set_id_number(uow, cipher, resident, data.id_number)
    uow.session.add(resident)
    await uow.session.flush()
    await schedule.refresh(uow, household)
    return resident


async def get_resident(uow: UnitOfWork, viewer: Viewer, resident_id: UUID, *, for_update: bool = False) -> Resident:
    resident = await uow.session.get(Resident, resident_id, with_for_update=for_update and uow.db.is_postgres)
    if resident is None:
        raise not_found("resident", resident_id)
    ensure_sees(
        viewer,
        "resident",
        resident_id,
        resident.community,
        resident.compound,
        resident.building_id,
        resident.household_id,
    )
    return resident


async def update_resident(
    uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, resident: Resident, data: ResidentUpdate
) -> Resident:
    ensure_writes(viewer, "resident", resident.id, resident.community, resident.compound, resident.building_id)
    changes = data.model_dump(exclude_unset=True)
    if "account_subject" in changes and not viewer.is_staff:
        raise forbid("Only community staff link a resident's app account.")
    for key in ("name", "gender", "birth_date", "phone"):
        if key in changes:
            setattr(resident, key, changes[key])
    if "phone" in changes:
        resident.phone_enc = None
        seal_phone_on(resident, cipher)
    if "mobility" in changes and changes["mobility"] is not None:
        resident.mobility = changes["mobility"]
    if "care_tags" in changes and changes["care_tags"] is not None:
        resident.tags = schedule.store_tags(changes["care_tags"])
    if changes.get("id_number"):
        await _set_id_number(uow, cipher, resident, changes["id_number"])
    if "health_notes" in changes:
        resident.health_notes_enc = cipher.seal(
            changes["health_notes"] or None, "residents", "health_notes_enc", resident.id
        )
    if "account_subject" in changes:
        await _link_account(uow, resident, changes["account_subject"], viewer.sub)
    resident.updated_at = utcnow()
    if {"birth_date", "care_tags", "id_number"} & changes.keys():
        await uow.session.flush()
        household = await uow.session.get(Household, resident.household_id)
        if household is not None:
            await schedule.refresh(uow, household)
    return resident


async def _link_account(uow: UnitOfWork, resident: Resident, subject: str | None, by: str) -> None:
    """Staff set (or clear) the account linked to a resident; the one linked before is replaced."""
    if subject != resident.account_subject:
        resident.account_subject = None
    if subject is not None:
        await linking.link_account(uow, resident, subject, method="staff", by=by)


async def list_residents(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None,
    community: str | None = None,
    compound: str | None = None,
    household_id: UUID | None = None,
    care_tag: str | None = None,
    min_age: int | None = None,
    mobility: str | None = None,
    status: str | None = ResidentStatus.active,
) -> Page[Resident]:
    query = select(Resident).where(viewer.clause(Resident, household_col=Resident.household_id))
    if community:
        query = query.where(Resident.community == community)
    if compound:
        query = query.where(Resident.compound == compound)
    if household_id:
        query = query.where(Resident.household_id == household_id)
    if care_tag:
        query = query.where(col(Resident.tags).contains(f",{care_tag},"))
    if min_age is not None:
        query = query.where(col(Resident.birth_date) <= schedule._years_before(today(), min_age))
    if mobility:
        query = query.where(Resident.mobility == mobility)
    if status:
        query = query.where(Resident.status == status)
    return await _page(uow, query, Resident, limit, cursor)


async def lookup_by_id_number(uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, value: str) -> Resident:
    digests = cipher.lookup_hashes(_checked_id_number(value))
    found = (
        (await uow.session.execute(select(Resident).where(col(Resident.id_number_hash).in_(digests)))).scalars().first()
    )
    if found is None or not viewer.covers(found.community, found.compound, found.building_id):
        raise not_found("resident", "with this ID number")
    return found


async def change_status(uow: UnitOfWork, viewer: Viewer, resident: Resident, body: StatusChange) -> Resident:
    """Moved away, died, or back: the household's schedule follows, open visit tasks for the person end, and
    ``ResidentStatusChanged`` tells the canteen (keyed hash of the ID number, never the number)."""
    if not viewer.staff_covers(resident.community, resident.compound):
        raise forbid("Only community staff record that a resident moved away or died.")
    if body.effective_date > today():
        raise Problem(
            422,
            "effective_date_in_future",
            "The date is in the future",
            "Record a move or death on or after the day it happened.",
            errors=[{"field": "effective_date", "message": "in the future", "type": "value_error"}],
        )
    if resident.status == body.status and resident.status_effective_date == body.effective_date:
        return resident  # a retry: nothing changes, nothing is emitted twice
    resident.status = body.status
    resident.status_effective_date = body.effective_date if body.status != ResidentStatus.active else None
    resident.updated_at = utcnow()
    if body.status != ResidentStatus.active:
        resident.account_subject = None
        tasks = await uow.session.execute(
            select(VisitTask).where(VisitTask.resident_id == resident.id, VisitTask.status == TaskStatus.open)
        )
        for task in tasks.scalars():
            task.status = TaskStatus.cancelled
            task.updated_at = utcnow()
    await uow.session.flush()
    household = await uow.session.get(Household, resident.household_id)
    if household is not None:
        await schedule.refresh(uow, household)
    uow.emit(
        ResidentStatusChanged(
            resident_id=resident.id,
            status=body.status.value,
            effective_date=body.effective_date,
            id_number_hash=resident.id_number_hash,
            community=resident.community,
            changed_at=resident.updated_at,
        )
    )
    return resident


async def reveal(
    uow: UnitOfWork,
    viewer: Viewer,
    cipher: FieldCipher,
    resident: Resident,
    body: RevealRequest,
    request_id: str | None,
) -> RevealedResident:
    if not viewer.may_reveal():
        raise Problem(
            403,
            "reveal_not_permitted",
            "Not permitted to see personal data in clear",
            "Revealing phone, ID number or health notes needs the `pii:reveal` permission.",
        )
    fields = sorted({f.value for f in body.fields})
    audit = PiiAudit(
        actor=viewer.sub,
        actor_roles=sorted(r.value for r in viewer.principal.roles),
        resident_id=resident.id,
        community=resident.community,
        fields=fields,
        reason=body.reason,
        request_id=request_id,
    )
    uow.session.add(audit)
    out = RevealedResident(resident_id=resident.id, audit_id=audit.id)
    if RevealField.phone in body.fields:
        out.phone = open_phone(resident, cipher)
    if RevealField.id_number in body.fields:
        out.id_number = cipher.open(resident.id_number_enc, "residents", "id_number_enc", resident.id)
    if RevealField.health_notes in body.fields:
        out.health_notes = cipher.open(resident.health_notes_enc, "residents", "health_notes_enc", resident.id)
    return out


async def list_audit(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None,
    resident_id: UUID | None = None,
    actor: str | None = None,
) -> Page[PiiAudit]:
    if not viewer.may_read_audit():
        raise Problem(
            403,
            "audit_not_permitted",
            "Not permitted to read the audit trail",
            "Reading the personal-data audit trail needs the `pii:audit` permission.",
        )
    query = select(PiiAudit)
    if resident_id:
        query = query.where(PiiAudit.resident_id == resident_id)
    if actor:
        query = query.where(PiiAudit.actor == actor)
    if cursor:
        at, ident = decode_cursor(cursor, type(utcnow()), UUID)
        query = query.where(sa.tuple_(PiiAudit.at, PiiAudit.id) < sa.tuple_(at, ident))
    query = query.order_by(col(PiiAudit.at).desc(), col(PiiAudit.id).desc()).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda a: encode_cursor(a.at, a.id))


async def link_by_door_code(uow: UnitOfWork, subject: str, resident_id: UUID) -> Resident:
    """A resident links their app account with the door code a grid worker handed over (``linking.verify``
    checked it). Linking the same account again is a no-op; a resident linked to another account is a 409."""
    found = await uow.session.get(Resident, resident_id, with_for_update=uow.db.is_postgres)
    if found is None or found.status != ResidentStatus.active:
        raise Problem(422, "door_code_invalid", "This door code is not valid", "Ask your grid worker for a new code.")
    await linking.link_account(uow, found, subject, method="door_code", by=None)
    return found


# --- grid workers -------------------------------------------------------------------------------------------


async def create_worker(uow: UnitOfWork, viewer: Viewer, data: GridWorkerCreate, cipher: FieldCipher) -> GridWorker:
    if await community_by_code(uow, data.community) is None or not viewer.staff_covers(data.community):
        raise not_found("community", data.community)
    dup = await uow.session.execute(select(GridWorker.id).where(GridWorker.subject == data.subject))
    if dup.first() is not None:
        raise conflict("grid_worker_exists", "This account is already registered as a grid worker.")
    worker = GridWorker(**data.model_dump())
    seal_phone_on(worker, cipher)
    uow.session.add(worker)
    return worker


async def get_worker(uow: UnitOfWork, viewer: Viewer, worker_id: UUID) -> GridWorker:
    worker = await uow.session.get(GridWorker, worker_id)
    if worker is None or not (
        viewer.staff_covers(worker.community) or (viewer.worker is not None and viewer.worker.id == worker.id)
    ):
        raise not_found("grid_worker", worker_id)
    return worker


async def list_workers(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None,
    community: str | None = None,
    active: bool | None = True,
) -> Page[GridWorker]:
    query = select(GridWorker)
    if not viewer.is_admin:
        communities = viewer.principal.scoped_values("community") if viewer.is_staff else set()
        query = query.where(col(GridWorker.community).in_(sorted(communities)))
    if community:
        query = query.where(GridWorker.community == community)
    if active is not None:
        query = query.where(GridWorker.active == active)
    return await _page(uow, query, GridWorker, limit, cursor)


async def add_assignment(uow: UnitOfWork, viewer: Viewer, worker: GridWorker, data: AssignmentCreate) -> GridAssignment:
    if not worker.active:
        raise conflict("grid_worker_inactive", "This grid worker has left; assign someone else.")
    compound = await compound_by_code(uow, data.compound)
    if compound is None or not viewer.staff_covers(compound.community, compound.code):
        raise not_found("compound", data.compound)
    if data.building_id is not None:
        building = await uow.session.get(Building, data.building_id)
        if building is None or building.compound != compound.code:
            raise not_found("building", data.building_id)
    current = await active_assignments(uow, worker.id)
    if any(a.compound == compound.code and a.building_id in (None, data.building_id) for a in current):
        raise conflict("already_assigned", "This worker already covers that place.")
    assignment = GridAssignment(
        worker_id=worker.id, community=compound.community, compound=compound.code, building_id=data.building_id
    )
    uow.session.add(assignment)
    return assignment


async def list_assignments(uow: UnitOfWork, worker: GridWorker, *, include_ended: bool = False) -> list[GridAssignment]:
    query = select(GridAssignment).where(GridAssignment.worker_id == worker.id)
    if not include_ended:
        query = query.where(col(GridAssignment.ended_at).is_(None))
    return list((await uow.session.execute(query.order_by(col(GridAssignment.started_at)))).scalars())


async def end_assignment(uow: UnitOfWork, viewer: Viewer, assignment_id: UUID) -> GridAssignment:
    assignment = await uow.session.get(GridAssignment, assignment_id)
    if assignment is None or not viewer.staff_covers(assignment.community, assignment.compound):
        raise not_found("assignment", assignment_id)
    if assignment.ended_at is None:
        assignment.ended_at = utcnow()
    return assignment


async def handover(uow: UnitOfWork, viewer: Viewer, worker: GridWorker, body: Handover) -> HandoverResult:
    """A grid worker leaves: their places, their open needs (as ledger owner) and their open visit tasks go
    to a successor in one step, each need noting the handover. The leaver is deactivated."""
    if not viewer.staff_covers(worker.community):
        raise not_found("grid_worker", worker.id)
    successor = await uow.session.get(GridWorker, body.to_worker_id)
    if successor is None or not viewer.staff_covers(successor.community):
        raise not_found("grid_worker", body.to_worker_id)
    if successor.id == worker.id or not successor.active:
        raise conflict("invalid_successor", "Hand over to another, active grid worker.")
    now = utcnow()
    theirs = {(a.compound, a.building_id) for a in await active_assignments(uow, successor.id)}
    moved = 0
    for a in await active_assignments(uow, worker.id):
        a.ended_at, a.handed_over_to = now, successor.id
        if (a.compound, a.building_id) not in theirs and (a.compound, None) not in theirs:
            uow.session.add(
                GridAssignment(
                    worker_id=successor.id,
                    community=a.community,
                    compound=a.compound,
                    building_id=a.building_id,
                    started_at=now,
                )
            )
        moved += 1
    needs = list(
        (
            await uow.session.execute(
                select(Need).where(Need.owner == worker.subject, col(Need.status).in_([*OPEN_NEED_STATES, "escalated"]))
            )
        ).scalars()
    )
    note = f"Handed over from {worker.name} to {successor.name}" + (f": {body.reason}" if body.reason else "")
    for need in needs:
        need.owner, need.owner_name, need.updated_at = successor.subject, successor.name, now
        uow.session.add(
            NeedNote(need_id=need.id, action="handover", actor=viewer.sub, actor_name=viewer.name, note=note)
        )
    tasks = await uow.session.execute(
        sa.update(VisitTask)
        .where(col(VisitTask.assigned_worker_id) == worker.id, col(VisitTask.status) == TaskStatus.open)
        .values(assigned_worker_id=successor.id, updated_at=now)
    )
    worker.active, worker.left_at = False, now
    return HandoverResult(
        from_worker_id=worker.id,
        to_worker_id=successor.id,
        assignments=moved,
        needs=len(needs),
        tasks=tasks.rowcount or 0,  # type: ignore[attr-defined]
    )


async def worker_for_place(uow: UnitOfWork, compound: str, building_id: UUID | None) -> GridWorker | None:
    """Who covers this door: a building assignment first, else the compound's."""
    rows = (
        await uow.session.execute(
            select(GridAssignment, GridWorker)
            .join(GridWorker, col(GridWorker.id) == GridAssignment.worker_id)
            .where(
                GridAssignment.compound == compound,
                col(GridAssignment.ended_at).is_(None),
                col(GridWorker.active).is_(True),
                sa.or_(col(GridAssignment.building_id).is_(None), col(GridAssignment.building_id) == building_id),
            )
            .order_by(col(GridAssignment.building_id).is_(None), col(GridAssignment.started_at))
        )
    ).all()
    return rows[0][1] if rows else None


# --- policies -----------------------------------------------------------------------------------------------


async def list_policies(uow: UnitOfWork) -> list[VisitPolicy]:
    rows = list((await uow.session.execute(select(VisitPolicy).order_by(col(VisitPolicy.cadence_days)))).scalars())
    if rows:
        return rows
    return [
        VisitPolicy(
            code=r.code,
            name=schedule.BUILTIN_NAMES.get(r.code, r.code),
            cadence_days=r.cadence_days,
            min_age=r.min_age,
            all_tags=[CareTag(t) for t in sorted(r.all_tags)],
            retry_not_home_days=r.retry_not_home_days,
            max_not_home_attempts=r.max_not_home_attempts,
            retry_refused_days=r.retry_refused_days,
        )
        for r in sorted(schedule.BUILTIN_RULES, key=lambda r: r.cadence_days)
    ]


async def _materialize_builtins(uow: UnitOfWork) -> None:
    """The first policy an administrator writes turns the built-in defaults into rows they can edit."""
    if (await uow.session.execute(select(VisitPolicy.id).limit(1))).first() is None:
        for p in await list_policies(uow):
            uow.session.add(p)
        await uow.session.flush()


async def create_policy(uow: UnitOfWork, data: PolicyCreate) -> VisitPolicy:
    await _materialize_builtins(uow)
    dup = await uow.session.execute(select(VisitPolicy.id).where(VisitPolicy.code == data.code))
    if dup.first() is not None:
        raise conflict("policy_exists", _t("A policy with code {code!r} already exists.", code=data.code))
    policy = VisitPolicy(**data.model_dump())
    uow.session.add(policy)
    await uow.session.flush()
    await schedule.refresh_many(uow)
    return policy


async def update_policy(uow: UnitOfWork, code: str, data: PolicyUpdate) -> VisitPolicy:
    await _materialize_builtins(uow)
    policy = (await uow.session.execute(select(VisitPolicy).where(VisitPolicy.code == code))).scalar_one_or_none()
    if policy is None:
        raise not_found("policy", code)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is not None or key == "min_age":
            setattr(policy, key, value)
    policy.updated_at = utcnow()
    await uow.session.flush()
    await schedule.refresh_many(uow)
    return policy
