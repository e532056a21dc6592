"""Residents: registration (sealed ID number, phone, health notes), status changes (moved, deceased), the
audited reveal of personal data, linking a resident's account. Use cases take a unit of work and never commit."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlmodel import col, select

from minsheng.contracts.visits import ResidentStatusChanged
from minsheng.platform.access import ensure, ensure_changeable, forbidden, visible_or_404
from minsheng.platform.errors import Problem, UniqueRule, invalid
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import Term, _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import FieldCipher, mask_id_number, open_phone, seal_phone_on
from minsheng.platform.uow import UnitOfWork
from services.visits import cadence, idcard, linking, schedule
from services.visits.access import Viewer, sees, supervises, writes
from services.visits.config import today
from services.visits.models import (
    Household,
    PiiAudit,
    Resident,
    ResidentCreate,
    ResidentFilters,
    ResidentPublic,
    ResidentStatus,
    ResidentUpdate,
    RevealedResident,
    RevealField,
    RevealRequest,
    StatusChange,
    TaskStatus,
    VisitTask,
)
from services.visits.places import get_household

RESIDENT_EXISTS = UniqueRule(
    Resident, ["id_number_hash"], "resident_exists", "A resident with this ID number is already registered."
)

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
        raise invalid(
            "invalid_id_number",
            "The ID number is not valid",
            _t("id_number {reason}.", reason=Term(reason)),
            field="id_number",
            message=reason,
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
        raise RESIDENT_EXISTS.problem()
    resident.id_number_enc = cipher.seal(number, "residents", "id_number_enc", resident.id)
    resident.id_number_hash = digest
    resident.id_number_masked = mask_id_number(number)
    if resident.birth_date is None:
        resident.birth_date = idcard.birth_date_of(number)


async def create_resident(uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, data: ResidentCreate) -> Resident:
    household = await get_household(uow, viewer, data.household_id, for_update=True)
    ensure_changeable(sees(viewer, household), writes(viewer, household), "household", household.id)
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
    return visible_or_404(resident, lambda r: sees(viewer, r, r.household_id), "resident", resident_id)


async def update_resident(
    uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, resident: Resident, data: ResidentUpdate
) -> Resident:
    ensure_changeable(sees(viewer, resident), writes(viewer, resident), "resident", resident.id)
    changes = data.model_dump(exclude_unset=True)
    ensure(
        "account_subject" not in changes or viewer.is_staff,
        forbidden("Only community staff link a resident's app account."),
    )
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
    filters: ResidentFilters,
    page: PageRequest,
) -> Page[Resident]:
    query = select(Resident).where(viewer.clause(Resident, household_col=Resident.household_id))
    query = where_given(
        query,
        (Resident.community, filters.community),
        (Resident.compound, filters.compound),
        (Resident.household_id, filters.household_id),
        (Resident.mobility, filters.mobility),
        (Resident.status, filters.status),
    )
    if filters.care_tag:
        query = query.where(col(Resident.tags).contains(f",{filters.care_tag},"))
    if filters.min_age is not None:
        query = query.where(col(Resident.birth_date) <= schedule._years_before(today(), filters.min_age))
    return await keyset_page(uow.session, query, Keyset.by_id(Resident), page)


async def lookup_by_id_number(uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, value: str) -> Resident:
    digests = cipher.lookup_hashes(_checked_id_number(value))
    found = (
        (await uow.session.execute(select(Resident).where(col(Resident.id_number_hash).in_(digests)))).scalars().first()
    )
    return visible_or_404(found, lambda r: sees(viewer, r), "resident", "with this ID number")


async def change_status(uow: UnitOfWork, viewer: Viewer, resident: Resident, body: StatusChange) -> Resident:
    """Moved away, died, or back: the household's schedule follows, open visit tasks for the person end, and
    ``ResidentStatusChanged`` tells the canteen (keyed hash of the ID number, never the number)."""
    ensure(supervises(viewer, resident), forbidden("Only community staff record that a resident moved away or died."))
    if body.effective_date > today():
        raise invalid(
            "effective_date_in_future",
            "The date is in the future",
            "Record a move or death on or after the day it happened.",
            field="effective_date",
            message="in the future",
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
    page: PageRequest,
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
    query = where_given(query, (PiiAudit.resident_id, resident_id), (PiiAudit.actor, actor))
    return await keyset_page(uow.session, query, Keyset((PiiAudit.at, PiiAudit.id)), page)


async def link_by_door_code(uow: UnitOfWork, subject: str, resident_id: UUID) -> Resident:
    """A resident links their app account with the door code a grid worker handed over (``linking.verify``
    checked it). Linking the same account again is a no-op; a resident linked to another account is a 409."""
    found = await uow.session.get(Resident, resident_id, with_for_update=uow.db.is_postgres)
    if found is None or found.status != ResidentStatus.active:
        raise Problem(422, "door_code_invalid", "This door code is not valid", "Ask your grid worker for a new code.")
    await linking.link_account(uow, found, subject, method="door_code", by=None)
    return found
