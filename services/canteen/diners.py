"""Diners and their families: registration (sealed ID number, phone, health notes), updates by staff, family
members, the audited reveal of personal data. Use cases take a unit of work and never commit."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import date
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.canteen import FamilyMemberLinked
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, UniqueRule, conflict, invalid, not_found
from minsheng.platform.filters import where_given
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest, keyset_page
from minsheng.platform.privacy import (
    PII_REVEAL_SCOPE,
    FieldCipher,
    mask_id_number,
    open_phone,
    seal_phone_on,
)
from minsheng.platform.uow import UnitOfWork
from services.canteen import access, config
from services.canteen.access import Relation
from services.canteen.canteens import find_canteen, touch
from services.canteen.models import (
    Canteen,
    Diner,
    DinerCreate,
    DinerFilters,
    DinerPublic,
    DinerSensitive,
    DinerStatus,
    DinerUpdate,
    FamilyMember,
    FamilyMemberCreate,
    FamilyMemberPublic,
    PiiAccess,
)
from services.canteen.subsidy import age_on

DINER_EXISTS = UniqueRule(
    Diner, ["id_number_hash"], "diner_exists", "A diner with this ID number is already registered."
)
SUBJECT_TAKEN = UniqueRule(Diner, ["subject"], "subject_taken", "This login is already linked to another diner.")
FAMILY_MEMBER_EXISTS = UniqueRule(
    FamilyMember, ["diner_id", "subject"], "family_member_exists", "This person is already linked to the diner."
)


def new_code(n: int = 10) -> str:
    """A short, unambiguous code for QR cards and pickup slips (Crockford-like alphabet)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(n))


async def family_of(uow: UnitOfWork, diner_ids: Iterable[UUID]) -> dict[UUID, list[FamilyMember]]:
    ids = list(diner_ids)
    out: dict[UUID, list[FamilyMember]] = {i: [] for i in ids}
    if ids:
        rows = await uow.session.execute(
            select(FamilyMember).where(col(FamilyMember.diner_id).in_(ids)).order_by(col(FamilyMember.created_at))
        )
        for m in rows.scalars():
            out[m.diner_id].append(m)
    return out


def diner_public(diner: Diner, family: Sequence[FamilyMember] = (), *, on: date | None = None) -> DinerPublic:
    return DinerPublic.model_validate(
        {
            **diner.model_dump(exclude={"id_number_enc", "id_number_hash", "health_notes_enc"}, warnings=False),
            "age": age_on(diner.birth_date, on or config.today()),
            "id_number": diner.id_number_masked,
            "has_health_notes": diner.health_notes_enc is not None,
            "family": [FamilyMemberPublic.model_validate(m, from_attributes=True) for m in family],
        }
    )


async def register_diner(uow: UnitOfWork, who: Principal, data: DinerCreate, fc: FieldCipher) -> Diner:
    home = await find_canteen(uow, data.canteen_id)
    if home is None:
        raise invalid(
            "unknown_canteen",
            "Unknown canteen",
            _t("No canteen {canteen_id}.", canteen_id=data.canteen_id),
            field="canteen_id",
            message="unknown canteen",
        )
    probe = Diner(
        **data.model_dump(exclude={"phone", "id_number", "health_notes", "resident_id", "subject"}), card_code=""
    )
    ensure(
        access.manages(who, home) or access.looks_after(who, probe, home),
        Problem(
            403,
            "forbidden_scope",
            "Not allowed here",
            "Only staff of the diner's canteen or community (or its grid workers) may register diners.",
        ),
    )
    id_hash = fc.lookup_hash(data.id_number) if data.id_number else None
    if id_hash is not None:
        dup = await uow.session.execute(
            select(Diner.id).where(col(Diner.id_number_hash).in_(fc.lookup_hashes(data.id_number or "")))
        )
        found = dup.first()
        if found is not None:
            raise DINER_EXISTS.problem(diner_id=str(found[0]))
    if data.subject is not None:
        await _subject_free(uow, data.subject)
    diner = Diner(
        **data.model_dump(exclude={"id_number", "health_notes"}),
        id_number_hash=id_hash,
        id_number_masked=mask_id_number(data.id_number.upper()) if data.id_number else None,
        card_code=new_code(),
    )
    diner.id_number_enc = fc.seal(
        data.id_number.upper() if data.id_number else None, "diners", "id_number_enc", diner.id
    )
    diner.health_notes_enc = fc.seal(data.health_notes or None, "diners", "health_notes_enc", diner.id)
    seal_phone_on(diner, fc)
    uow.session.add(diner)
    return diner


async def _subject_free(uow: UnitOfWork, subject: str, but: UUID | None = None) -> None:
    taken = await uow.session.execute(select(Diner.id).where(Diner.subject == subject))
    row = taken.first()
    if row is not None and row[0] != but:
        raise SUBJECT_TAKEN.problem()


# Built once (bound parameter): ``load_diner`` is on every booking.
_DINER_AND_HOME = (
    select(Diner, Canteen)
    .join(Canteen, col(Canteen.id) == col(Diner.canteen_id))
    .where(col(Diner.id) == sa.bindparam("diner_id"))
)
_DINER_AND_HOME_LOCKED = _DINER_AND_HOME.with_for_update(of=Diner)  # type: ignore[arg-type]


async def load_diner(
    uow: UnitOfWork,
    who: Principal,
    diner_id: UUID,
    *,
    for_update: bool = False,
    with_family: bool = True,
) -> tuple[Diner, Canteen, list[FamilyMember], Relation, FamilyMember | None]:
    """The diner if the caller may see them (else 404), with home canteen, family and the caller's relation.
    One round trip for diner + home canteen (locking the diner row on PostgreSQL when asked); the family is read
    only when it is wanted or decides the caller's relation (not for the elder themself or their staff)."""
    query = _DINER_AND_HOME_LOCKED if for_update and uow.db.is_postgres else _DINER_AND_HOME
    row = (await uow.session.execute(query, {"diner_id": diner_id})).first()
    if row is None:
        raise not_found("diner", diner_id)
    diner, home = row[0], row[1]
    family: list[FamilyMember] = []
    if with_family or not (diner.subject == who.sub or access.looks_after(who, diner, home)):
        family = (await family_of(uow, [diner.id]))[diner.id]
    rel, member = access.relation(who, diner, home, family)
    if rel is None:  # no relation to the diner: as if there were none
        raise not_found("diner", diner_id)
    return diner, home, family, rel, member


def _staff_only(rel: Relation) -> None:
    ensure(
        rel == Relation.staff,
        Problem(403, "forbidden_role", "Staff only", "Only canteen or community staff may do this."),
    )


async def update_diner(
    uow: UnitOfWork, who: Principal, diner_id: UUID, data: DinerUpdate, fc: FieldCipher
) -> tuple[Diner, list[FamilyMember]]:
    diner, _, family, rel, _ = await load_diner(uow, who, diner_id, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    staff_fields = {
        "canteen_id",
        "community",
        "compound",
        "circumstances",
        "delivery_eligible",
        "resident_id",
        "subject",
        "name",
        "birth_date",
        "id_number",
    }
    if rel != Relation.staff and staff_fields & changes.keys():
        raise Problem(
            403,
            "forbidden_field",
            "Staff only",
            _t("Only staff may change: {fields}.", fields=", ".join(sorted(staff_fields & changes.keys()))),
        )
    if "canteen_id" in changes and changes["canteen_id"] is not None:
        home = await find_canteen(uow, changes["canteen_id"])
        if home is None or not access.may_move_to(who, diner, home):
            raise Problem(422, "unknown_canteen", "Unknown canteen", "No such canteen in your scope.")
    if changes.get("subject") is not None:
        await _subject_free(uow, changes["subject"], but=diner.id)
    id_number_changed = changes.get("id_number") is not None
    if changes.get("id_number") is not None:
        number = changes.pop("id_number").upper()
        id_hash = fc.lookup_hash(number)
        dup = (
            await uow.session.execute(select(Diner.id).where(col(Diner.id_number_hash).in_(fc.lookup_hashes(number))))
        ).first()
        if dup is not None and dup[0] != diner.id:
            raise DINER_EXISTS.problem("Another diner has this ID number.", diner_id=str(dup[0]))
        diner.id_number_enc = fc.seal(number, "diners", "id_number_enc", diner.id)
        diner.id_number_hash = id_hash
        diner.id_number_masked = mask_id_number(number)
    changes.pop("id_number", None)
    if "health_notes" in changes:
        notes = changes.pop("health_notes")
        diner.health_notes_enc = fc.seal(notes or None, "diners", "health_notes_enc", diner.id)
    away_from = changes.get("away_from", diner.away_from)
    away_until = changes.get("away_until", diner.away_until)
    if away_from and away_until and away_until < away_from:
        raise invalid(
            "validation_error",
            "The request is not valid",
            "away_until is before away_from",
            field="away_until",
            message="before away_from",
        )
    for name, value in changes.items():
        if value is None and name in {
            "name",
            "canteen_id",
            "community",
            "circumstances",
            "dietary",
            "dislikes",
            "delivery_eligible",
            "birth_date",
        }:
            continue
        setattr(diner, name, value)
    if "phone" in changes:
        diner.phone_enc = None
        seal_phone_on(diner, fc)
    if (changes.get("resident_id") is not None or id_number_changed) and diner.status == DinerStatus.active:
        from services.canteen.care import resend_open_alerts  # care imports this module

        await uow.session.flush()
        await resend_open_alerts(uow, diner, fc)
    touch(diner)
    return diner, family


async def list_diners(
    uow: UnitOfWork,
    who: Principal,
    filters: DinerFilters,
    page: PageRequest,
) -> Page[Diner]:
    query = select(Diner)
    if not who.is_admin:
        canteen_scopes = who.scoped_values("canteen") if who.has(Role.staff) else set()
        home_ids: list[UUID] = []
        if canteen_scopes:
            canteens = await uow.session.execute(select(Canteen.id, Canteen.code))
            home_ids = [i for i, c in canteens if str(i) in canteen_scopes or c in canteen_scopes]
        conditions = [
            col(Diner.canteen_id).in_(home_ids),
            col(Diner.community).in_(who.scoped_values("community")),
            col(Diner.compound).in_(who.scoped_values("compound")),
        ]
        query = query.where(sa.or_(*conditions))
    query = where_given(
        query,
        (Diner.canteen_id, filters.canteen_id),
        (Diner.community, filters.community),
        (Diner.status, filters.status),
        (Diner.delivery_eligible, filters.delivery),
    )
    if filters.name:
        query = query.where(col(Diner.name).startswith(filters.name, autoescape=True))
    by_name = Keyset((Diner.name, Diner.id), kinds=(str, UUID), descending=False)
    return await keyset_page(uow.session, query, by_name, page)


async def my_diners(uow: UnitOfWork, who: Principal) -> list[Diner]:
    family_ids = select(FamilyMember.diner_id).where(FamilyMember.subject == who.sub)
    query = select(Diner).where(sa.or_(col(Diner.subject) == who.sub, col(Diner.id).in_(family_ids)))
    return list((await uow.session.execute(query.order_by(col(Diner.name), col(Diner.id)))).scalars())


async def lookup_diner(uow: UnitOfWork, who: Principal, id_number: str, fc: FieldCipher) -> Diner:
    """Find a diner by ID number (its keyed hash): is this elder registered already, and where?"""
    found = await uow.session.execute(select(Diner).where(col(Diner.id_number_hash).in_(fc.lookup_hashes(id_number))))
    diner = found.scalars().first()
    if diner is None:
        raise not_found("diner", "with this ID number")
    await load_diner(uow, who, diner.id)  # 404 outside the caller's scope
    return diner


async def add_family(
    uow: UnitOfWork, who: Principal, diner_id: UUID, data: FamilyMemberCreate, fc: FieldCipher
) -> FamilyMember:
    diner, _, family, rel, _ = await load_diner(uow, who, diner_id, for_update=True)
    ensure(
        rel in (Relation.staff, Relation.self_),
        Problem(403, "forbidden_role", "Not allowed", "Only the elder or staff may add family members."),
    )
    if any(m.subject == data.subject for m in family):
        raise FAMILY_MEMBER_EXISTS.problem()
    if diner.subject == data.subject:
        raise conflict("family_member_is_diner", "The elder cannot be their own family member.")
    member = FamilyMember(diner_id=diner.id, **data.model_dump())
    seal_phone_on(member, fc)
    uow.session.add(member)
    uow.emit(
        FamilyMemberLinked(
            diner_id=diner.id,
            member_id=member.id,
            account_id=member.subject,
            relation=member.relation,
            method="added",
            linked_at=utcnow(),
        )
    )
    return member


async def remove_family(uow: UnitOfWork, who: Principal, diner_id: UUID, member_id: UUID) -> None:
    _, _, family, rel, me = await load_diner(uow, who, diner_id, for_update=True)
    member = next((m for m in family if m.id == member_id), None)
    if member is None:
        raise not_found("family_member", member_id)
    ensure(
        rel in (Relation.staff, Relation.self_) or (me is not None and me.id == member_id),
        Problem(403, "forbidden_role", "Not allowed", "Only the elder, staff or the member themself may."),
    )
    await uow.session.delete(member)


async def read_sensitive(
    uow: UnitOfWork, who: Principal, diner_id: UUID, purpose: str, fc: FieldCipher
) -> DinerSensitive:
    diner, _, _, rel, _ = await load_diner(uow, who, diner_id, with_family=False)
    _staff_only(rel)
    if not (who.is_admin or PII_REVEAL_SCOPE in who.scopes):
        raise Problem(
            403,
            "reveal_not_permitted",
            "Not permitted to see personal data in clear",
            "Reading a diner's phone, ID number or health notes needs the `pii:reveal` permission.",
        )
    uow.session.add(
        PiiAccess(diner_id=diner.id, subject=who.sub, purpose=purpose, fields=["phone", "id_number", "health_notes"])
    )
    return DinerSensitive(
        id=diner.id,
        phone=open_phone(diner, fc),
        id_number=fc.open(diner.id_number_enc, "diners", "id_number_enc", diner.id),
        health_notes=fc.open(diner.health_notes_enc, "diners", "health_notes_enc", diner.id),
    )


async def access_log(uow: UnitOfWork, who: Principal, diner_id: UUID, page: PageRequest) -> Page[PiiAccess]:
    _, _, _, rel, _ = await load_diner(uow, who, diner_id, with_family=False)
    _staff_only(rel)
    query = select(PiiAccess).where(PiiAccess.diner_id == diner_id)
    return await keyset_page(uow.session, query, Keyset((PiiAccess.at, PiiAccess.id)), page)
