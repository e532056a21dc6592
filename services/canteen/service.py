"""Use cases of the canteen service: canteens and meal slots, diners and their families, menus.
(Orders live in ``orders.py``, subsidy rules in ``subsidy.py``, reports in ``reports.py``, care signals in
``care.py``.) They take a unit of work and never commit: the caller does, once."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.canteen import FamilyMemberLinked
from minsheng.platform.auth import Principal, Role
from minsheng.platform.errors import Problem, conflict, not_found
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Page, decode_cursor, encode_cursor, page_of
from minsheng.platform.privacy import (
    PII_REVEAL_SCOPE,
    FieldCipher,
    field_cipher,
    mask_id_number,
    open_phone,
    seal_phone_on,
)
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings
from services.canteen import access, config
from services.canteen.access import Relation
from services.canteen.models import (
    Canteen,
    CanteenCreate,
    CanteenPublic,
    CanteenStatus,
    CanteenUpdate,
    Diner,
    DinerCreate,
    DinerPublic,
    DinerSensitive,
    DinerStatus,
    DinerUpdate,
    FamilyMember,
    FamilyMemberCreate,
    FamilyMemberPublic,
    MealSlotPublic,
    MealSlotRow,
    MealSlotUpsert,
    Menu,
    MenuCopy,
    MenuPublic,
    MenuStatus,
    MenuUpsert,
    PiiAccess,
    SetMeal,
    SetMealPublic,
    Slot,
)
from services.canteen.subsidy import age_on

SLOT_RANK = {Slot.breakfast.value: 0, Slot.lunch.value: 1, Slot.dinner.value: 2}


def cipher(settings: Settings) -> FieldCipher:
    return field_cipher(settings)


def new_code(n: int = 10) -> str:
    """A short, unambiguous code for QR cards and pickup slips (Crockford-like alphabet)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _touch(obj: Any) -> None:
    obj.updated_at = utcnow()


# --- canteens ----------------------------------------------------------------------------------------------------


async def find_canteen(uow: UnitOfWork, ident: str | UUID) -> Canteen | None:
    if isinstance(ident, UUID):
        return await uow.session.get(Canteen, ident)
    try:
        return await uow.session.get(Canteen, UUID(ident))
    except ValueError:
        found = await uow.session.execute(select(Canteen).where(Canteen.code == ident))
        return found.scalar_one_or_none()


async def get_canteen(uow: UnitOfWork, ident: str | UUID) -> Canteen:
    canteen = await find_canteen(uow, ident)
    if canteen is None:
        raise not_found("canteen", ident)
    return canteen


async def managed_canteen(uow: UnitOfWork, who: Principal, ident: str | UUID) -> Canteen:
    canteen = await find_canteen(uow, ident)
    if canteen is None or not access.manages(who, canteen):
        raise not_found("canteen", ident)
    return canteen


async def create_canteen(uow: UnitOfWork, who: Principal, data: CanteenCreate) -> Canteen:
    if not (who.is_admin or (who.has(Role.staff) and who.covers(data.community))):
        raise Problem(
            403,
            "forbidden_scope",
            "Not allowed in this community",
            f"Only staff of {data.community} (or admin) may open a canteen there.",
        )
    existing = await uow.session.execute(select(Canteen.id).where(Canteen.code == data.code))
    if existing.first() is not None:
        raise conflict("canteen_code_taken", f"A canteen with code {data.code} exists.")
    canteen = Canteen(**data.model_dump())
    uow.session.add(canteen)
    return canteen


async def update_canteen(uow: UnitOfWork, canteen: Canteen, data: CanteenUpdate) -> Canteen:
    changes = data.model_dump(exclude_unset=True)
    if "communities" in changes and changes["communities"] is not None:
        changes["communities"] = sorted(set(changes["communities"]))
    for name, value in changes.items():
        if value is None and name in {"name", "address", "operator", "status", "communities", "delivery_points"}:
            continue
        setattr(canteen, name, value)
    _touch(canteen)
    return canteen


async def slots_of(uow: UnitOfWork, canteen_ids: Iterable[UUID]) -> dict[UUID, list[MealSlotRow]]:
    ids = list(canteen_ids)
    out: dict[UUID, list[MealSlotRow]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await uow.session.execute(select(MealSlotRow).where(col(MealSlotRow.canteen_id).in_(ids)))
    for row in rows.scalars():
        out[row.canteen_id].append(row)
    for slots in out.values():
        slots.sort(key=lambda s: SLOT_RANK[s.slot])
    return out


async def slot_of(uow: UnitOfWork, canteen_id: UUID, slot: str) -> MealSlotRow | None:
    return await uow.session.get(MealSlotRow, (canteen_id, slot))


async def upsert_slot(uow: UnitOfWork, canteen: Canteen, slot: Slot, data: MealSlotUpsert) -> MealSlotRow:
    row = await slot_of(uow, canteen.id, slot.value)
    if row is None:
        row = MealSlotRow(canteen_id=canteen.id, slot=slot.value, **data.model_dump())
        uow.session.add(row)
    else:
        for name, value in data.model_dump().items():
            setattr(row, name, value)
    return row


def canteen_public(canteen: Canteen, slots: Sequence[MealSlotRow]) -> CanteenPublic:
    return CanteenPublic.model_validate(
        {
            **canteen.model_dump(),
            "slots": [MealSlotPublic.model_validate({**s.model_dump(), "slot": s.slot}) for s in slots],
        }
    )


async def list_canteens(
    uow: UnitOfWork, *, community: str | None, status: CanteenStatus | None, limit: int, cursor: str | None
) -> Page[Canteen]:
    query = select(Canteen)
    if status is not None:
        query = query.where(Canteen.status == status)
    if cursor:
        (code,) = decode_cursor(cursor, str)
        query = query.where(col(Canteen.code) > code)
    query = query.order_by(col(Canteen.code))
    rows = list((await uow.session.execute(query)).scalars())
    if community is not None:  # communities served is a JSON list: filtered here (a county has few canteens)
        rows = [c for c in rows if c.community == community or community in c.communities]
    return page_of(rows[: limit + 1], limit, lambda c: encode_cursor(c.code))


# --- diners -------------------------------------------------------------------------------------------------------


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
        raise Problem(
            422,
            "unknown_canteen",
            "Unknown canteen",
            f"No canteen {data.canteen_id}.",
            errors=[{"field": "canteen_id", "message": "unknown canteen", "type": "value_error"}],
        )
    probe = Diner(
        **data.model_dump(exclude={"phone", "id_number", "health_notes", "resident_id", "subject"}), card_code=""
    )
    if not (access.manages(who, home) or access.looks_after(who, probe, home)):
        raise Problem(
            403,
            "forbidden_scope",
            "Not allowed here",
            "Only staff of the diner's canteen or community (or its grid workers) may register diners.",
        )
    id_hash = fc.lookup_hash(data.id_number) if data.id_number else None
    if id_hash is not None:
        dup = await uow.session.execute(
            select(Diner.id).where(col(Diner.id_number_hash).in_(fc.lookup_hashes(data.id_number or "")))
        )
        found = dup.first()
        if found is not None:
            raise conflict("diner_exists", "A diner with this ID number is already registered.", diner_id=str(found[0]))
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
        raise conflict("subject_taken", "This login is already linked to another diner.")


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
    if rel is None:
        raise not_found("diner", diner_id)
    return diner, home, family, rel, member


def _staff_only(rel: Relation) -> None:
    if rel != Relation.staff:
        raise Problem(403, "forbidden_role", "Staff only", "Only canteen or community staff may do this.")


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
            f"Only staff may change: {', '.join(sorted(staff_fields & changes.keys()))}.",
        )
    if "canteen_id" in changes and changes["canteen_id"] is not None:
        home = await find_canteen(uow, changes["canteen_id"])
        if home is None or (not access.manages(who, home) and not who.covers(diner.community, diner.compound)):
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
            raise conflict("diner_exists", "Another diner has this ID number.", diner_id=str(dup[0]))
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
        raise Problem(
            422,
            "validation_error",
            "The request is not valid",
            "away_until is before away_from",
            errors=[{"field": "away_until", "message": "before away_from", "type": "value_error"}],
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
    _touch(diner)
    return diner, family


async def list_diners(
    uow: UnitOfWork,
    who: Principal,
    *,
    canteen_id: UUID | None,
    community: str | None,
    status: DinerStatus | None,
    name: str | None,
    delivery: bool | None,
    limit: int,
    cursor: str | None,
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
    if canteen_id is not None:
        query = query.where(Diner.canteen_id == canteen_id)
    if community is not None:
        query = query.where(Diner.community == community)
    if status is not None:
        query = query.where(Diner.status == status)
    if name:
        query = query.where(col(Diner.name).startswith(name, autoescape=True))
    if delivery is not None:
        query = query.where(Diner.delivery_eligible == delivery)
    if cursor:
        n, ident = decode_cursor(cursor, str, UUID)
        query = query.where(sa.tuple_(Diner.name, Diner.id) > sa.tuple_(n, ident))
    query = query.order_by(col(Diner.name), col(Diner.id)).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda d: encode_cursor(d.name, d.id))


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
    if rel != Relation.staff and rel != Relation.self_:
        raise Problem(403, "forbidden_role", "Not allowed", "Only the elder or staff may add family members.")
    if any(m.subject == data.subject for m in family):
        raise conflict("family_member_exists", "This person is already linked to the diner.")
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
    if rel not in (Relation.staff, Relation.self_) and not (me is not None and me.id == member_id):
        raise Problem(403, "forbidden_role", "Not allowed", "Only the elder, staff or the member themself may.")
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


async def access_log(
    uow: UnitOfWork, who: Principal, diner_id: UUID, *, limit: int, cursor: str | None
) -> Page[PiiAccess]:
    _, _, _, rel, _ = await load_diner(uow, who, diner_id, with_family=False)
    _staff_only(rel)
    query = select(PiiAccess).where(PiiAccess.diner_id == diner_id)
    if cursor:
        at, ident = decode_cursor(cursor, type(utcnow()), UUID)
        query = query.where(sa.tuple_(PiiAccess.at, PiiAccess.id) < sa.tuple_(at, ident))
    query = query.order_by(col(PiiAccess.at).desc(), col(PiiAccess.id).desc()).limit(limit + 1)
    rows = list((await uow.session.execute(query)).scalars())
    return page_of(rows, limit, lambda a: encode_cursor(a.at, a.id))


# --- menus --------------------------------------------------------------------------------------------------------

# What a dietary need requires of a set meal (one of these tags on the meal, or on every dish), and which dish
# tags it cannot take.
REQUIRES: dict[str, set[str]] = {
    "soft_food": {"soft"},
    "low_salt": {"low_salt"},
    "diabetic": {"diabetic_friendly", "low_sugar"},
    "low_fat": {"low_fat"},
    "vegetarian": {"vegetarian"},
    "halal": {"halal"},
}
AVOIDS: dict[str, set[str]] = {"no_spicy": {"spicy"}, "halal": {"contains_pork"}, "vegetarian": {"contains_meat"}}


def assess(meal: SetMeal, needs: Iterable[str], dislikes: Iterable[str]) -> list[str]:
    """Why this set meal does not suit someone (empty: it suits)."""
    return conflicts_of(meal.name, meal.tags, meal.dishes, needs, dislikes)


def conflicts_of(
    name: str, tags: Sequence[str], dishes: Sequence[dict[str, Any]], needs: Iterable[str], dislikes: Iterable[str]
) -> list[str]:
    """``assess`` on a set meal's name, tags and dishes (ORM object or database row alike)."""
    dish_tags = [set(d.get("tags", [])) for d in dishes]
    whole = set(tags) | (set.intersection(*dish_tags) if dish_tags else set())
    anywhere = set(tags).union(*dish_tags)
    conflicts: list[str] = []
    for need in needs:
        if need in REQUIRES and not whole & REQUIRES[need]:
            conflicts.append(f"not_{need}")
        for tag in sorted(AVOIDS.get(need, set()) & anywhere):
            conflicts.append(f"contains_{tag.removeprefix('contains_')}")
    words = " ".join(
        [name] + [d.get("name", "") for d in dishes] + [i for d in dishes for i in d.get("ingredients", [])]
    )
    conflicts.extend(f"dislike:{w}" for w in dislikes if w and w in words)
    return conflicts


def menu_public(
    menu: Menu, meals: Sequence[SetMeal], *, needs: Sequence[str] | None = None, dislikes: Sequence[str] = ()
) -> MenuPublic:
    items = []
    for m in sorted(meals, key=lambda x: x.position):
        data = {**m.model_dump(), "suitable": None, "conflicts": []}
        if needs is not None:
            conflicts = assess(m, needs, dislikes)
            data.update(suitable=not conflicts, conflicts=conflicts)
        items.append(SetMealPublic.model_validate(data))
    return MenuPublic.model_validate(
        {**menu.model_dump(), "remaining": max(menu.capacity - menu.booked, 0), "set_meals": items}
    )


async def meals_of(uow: UnitOfWork, menu_ids: Iterable[UUID]) -> dict[UUID, list[SetMeal]]:
    ids = list(menu_ids)
    out: dict[UUID, list[SetMeal]] = {i: [] for i in ids}
    if ids:
        for m in (await uow.session.execute(select(SetMeal).where(col(SetMeal.menu_id).in_(ids)))).scalars():
            out[m.menu_id].append(m)
    return out


async def upsert_menu(
    uow: UnitOfWork, canteen: Canteen, meal_date: date, slot: Slot, data: MenuUpsert
) -> tuple[Menu, list[SetMeal]]:
    if meal_date < config.today():
        raise Problem(
            422,
            "meal_date_in_past",
            "Menus are for today or later",
            f"{meal_date} has passed.",
            errors=[{"field": "meal_date", "message": "in the past", "type": "value_error"}],
        )
    slot_row = await slot_of(uow, canteen.id, slot.value)
    if slot_row is None or not slot_row.active:
        raise conflict("slot_not_offered", f"{canteen.name} does not serve {slot.value}; configure the slot first.")
    query = select(Menu).where(Menu.canteen_id == canteen.id, Menu.meal_date == meal_date, Menu.slot == slot.value)
    if uow.db.is_postgres:
        query = query.with_for_update()
    menu = (await uow.session.execute(query)).scalar_one_or_none()
    capacity = data.capacity if data.capacity is not None else slot_row.capacity
    if menu is None:
        menu = Menu(canteen_id=canteen.id, meal_date=meal_date, slot=slot.value, capacity=capacity, note=data.note)
        uow.session.add(menu)
        try:
            await uow.session.flush()
        except sa.exc.IntegrityError as exc:
            raise conflict("concurrent_menu_change", "Someone saved this menu at the same time; retry.") from exc
    else:
        if menu.booked > 0:
            raise conflict(
                "menu_has_orders",
                "Diners have booked this menu; change capacity or add a new menu day instead of rewriting it.",
                booked=menu.booked,
            )
        await uow.session.execute(sa.delete(SetMeal).where(col(SetMeal.menu_id) == menu.id))
        menu.capacity, menu.note = capacity, data.note
        _touch(menu)
    meals = [
        SetMeal(menu_id=menu.id, position=i, **{**m.model_dump(), "dishes": [d.model_dump() for d in m.dishes]})
        for i, m in enumerate(data.set_meals)
    ]
    uow.session.add_all(meals)
    return menu, meals


async def copy_menus(uow: UnitOfWork, canteen: Canteen, data: MenuCopy) -> list[tuple[Menu, list[SetMeal]]]:
    """Reuse a week's menus: drafts on the target days with the same set meals; days that already have a menu
    for a slot keep it."""
    if data.to_date < config.today():
        raise Problem(
            422,
            "meal_date_in_past",
            "Menus are for today or later",
            f"{data.to_date} has passed.",
            errors=[{"field": "to_date", "message": "in the past", "type": "value_error"}],
        )
    shift = data.to_date - data.from_date
    source = list(
        (
            await uow.session.execute(
                select(Menu).where(
                    Menu.canteen_id == canteen.id,
                    Menu.meal_date >= data.from_date,
                    Menu.meal_date < data.from_date + timedelta(days=data.days),
                )
            )
        ).scalars()
    )
    targets = {
        (m.meal_date, m.slot)
        for m in (
            await uow.session.execute(
                select(Menu).where(
                    Menu.canteen_id == canteen.id,
                    Menu.meal_date >= data.to_date,
                    Menu.meal_date < data.to_date + timedelta(days=data.days),
                )
            )
        ).scalars()
    }
    meals = await meals_of(uow, [m.id for m in source])
    created = []
    for menu in sorted(source, key=lambda m: (m.meal_date, SLOT_RANK[m.slot])):
        day = menu.meal_date + shift
        if (day, menu.slot) in targets or day < config.today():
            continue
        copy = Menu(canteen_id=canteen.id, meal_date=day, slot=menu.slot, capacity=menu.capacity, note=menu.note)
        uow.session.add(copy)
        await uow.session.flush()
        copied = [
            SetMeal(
                menu_id=copy.id,
                position=m.position,
                name=m.name,
                kind=m.kind,
                price_fen=m.price_fen,
                dishes=list(m.dishes),
                tags=list(m.tags),
            )
            for m in meals[menu.id]
        ]
        uow.session.add_all(copied)
        created.append((copy, copied))
    return created


async def get_menu(uow: UnitOfWork, menu_id: UUID, *, for_update: bool = False) -> Menu:
    menu = await uow.session.get(Menu, menu_id, with_for_update=for_update and uow.db.is_postgres)
    if menu is None:
        raise not_found("menu", menu_id)
    return menu


def publish(canteen: Canteen, menu: Menu) -> None:
    if canteen.status != CanteenStatus.open:
        raise conflict("canteen_not_open", f"{canteen.name} is {canteen.status}; open it before publishing menus.")
    if menu.status != MenuStatus.published:
        menu.status = MenuStatus.published
        menu.published_at = utcnow()
        _touch(menu)


async def publish_range(uow: UnitOfWork, canteen: Canteen, date_from: date, date_to: date) -> list[Menu]:
    query = select(Menu).where(
        Menu.canteen_id == canteen.id,
        Menu.meal_date >= date_from,
        Menu.meal_date <= date_to,
        Menu.status == MenuStatus.draft,
    )
    menus = list((await uow.session.execute(query)).scalars())
    for menu in menus:
        publish(canteen, menu)
    return menus


async def set_capacity(uow: UnitOfWork, menu: Menu, capacity: int) -> Menu:
    if capacity < menu.booked:
        raise conflict("capacity_below_booked", f"{menu.booked} meals are booked already.", booked=menu.booked)
    menu.capacity = capacity
    _touch(menu)
    return menu


def _slot_rank(slot: Any) -> Any:
    return sa.case(SLOT_RANK, value=slot, else_=9)


MENUS = Menu.__table__  # type: ignore[attr-defined]
SET_MEALS = SetMeal.__table__  # type: ignore[attr-defined]
CANTEENS = Canteen.__table__  # type: ignore[attr-defined]
# The columns ``access.manages`` looks at, for reads that need a canteen's id and who manages it, not the ORM object.
_CANTEEN_REF_COLUMNS = (CANTEENS.c.id, CANTEENS.c.code, CANTEENS.c.community, CANTEENS.c.communities)
_CANTEEN_BY_ID = sa.select(*_CANTEEN_REF_COLUMNS).where(CANTEENS.c.id == sa.bindparam("ident"))
_CANTEEN_BY_CODE = sa.select(*_CANTEEN_REF_COLUMNS).where(CANTEENS.c.code == sa.bindparam("ident"))


async def canteen_row(uow: UnitOfWork, ident: str) -> sa.Row[Any]:
    """A canteen's id, code and communities (a Core row: enough for ``access.manages``), by id or code; 404
    otherwise. Cheaper than ``get_canteen`` for reads that need no ORM object."""
    by_id, value = _canteen_key(ident)
    row = (await uow.session.execute(_CANTEEN_BY_ID if by_id else _CANTEEN_BY_CODE, {"ident": value})).first()
    if row is None:
        raise not_found("canteen", ident)
    return row


def _canteen_key(ident: str) -> tuple[bool, Any]:
    """(by id?, value) for a canteen reference: a UUID is an id, anything else a code (as ``find_canteen``)."""
    try:
        return True, UUID(ident)
    except ValueError:
        return False, ident


@lru_cache(maxsize=32)
def _menu_page_statement(by_id: bool, drafts: bool, by_slot: bool, after_cursor: bool) -> sa.Select[Any]:
    """The canteen (no row: no such canteen) with a page of its menus (``:limit``, by date and slot) and their set
    meals, in one round trip. Built once per filter combination with bound parameters, so SQLAlchemy compiles
    it once."""
    this_canteen = (CANTEENS.c.id if by_id else CANTEENS.c.code) == sa.bindparam("canteen")
    rank = _slot_rank(MENUS.c.slot)
    page = sa.select(*MENUS.c, rank.label("rank")).where(
        MENUS.c.canteen_id == sa.select(CANTEENS.c.id).where(this_canteen).scalar_subquery(),
        MENUS.c.meal_date >= sa.bindparam("date_from"),
        MENUS.c.meal_date <= sa.bindparam("date_to"),
    )
    if not drafts:
        page = page.where(MENUS.c.status == MenuStatus.published.value)
    if by_slot:
        page = page.where(MENUS.c.slot == sa.bindparam("slot"))
    if after_cursor:
        page = page.where(
            sa.tuple_(MENUS.c.meal_date, rank)
            > sa.tuple_(sa.bindparam("cursor_date", type_=sa.Date()), sa.bindparam("cursor_rank", type_=sa.Integer()))
        )
    menus = page.order_by(MENUS.c.meal_date, rank).limit(sa.bindparam("limit", type_=sa.Integer())).subquery("page")
    meals = [SET_MEALS.c[name].label(f"meal_{name}") for name in ("id", "name", "kind", "price_fen", "dishes", "tags")]
    return (
        sa.select(CANTEENS.c.id.label("found"), menus, *meals)
        .select_from(CANTEENS)
        .outerjoin(menus, menus.c.canteen_id == CANTEENS.c.id)
        .outerjoin(SET_MEALS, SET_MEALS.c.menu_id == menus.c.id)
        .where(this_canteen)
        .order_by(menus.c.meal_date, menus.c.rank, SET_MEALS.c.position)
    )


async def menu_page(
    uow: UnitOfWork,
    canteen: str,
    *,
    date_from: date,
    date_to: date,
    slot: Slot | None,
    drafts: bool,
    limit: int,
    cursor: str | None,
    needs: Sequence[str] | None = None,
    dislikes: Sequence[str] = (),
    only_suitable: bool = False,
) -> dict[str, Any]:
    """A page of the menus of ``canteen`` (id or code; 404 if there is none) as the plain data of
    ``Page[MenuPublic]`` (same fields, same order), read with their set meals in one round trip. Built straight
    from the rows: the data was validated when it was written, and validating ~150 nested models per page
    again cost more than the query."""
    by_id, key = _canteen_key(canteen)
    params: dict[str, Any] = {"canteen": key, "date_from": date_from, "date_to": date_to, "limit": limit + 1}
    if slot is not None:
        params["slot"] = slot.value
    if cursor:
        try:
            d, r = decode_cursor(cursor, date, int)
        except Problem:
            await canteen_row(uow, canteen)  # an unknown canteen is a 404 before a bad cursor
            raise
        params["cursor_date"], params["cursor_rank"] = d, r
    rows = (
        await uow.session.execute(_menu_page_statement(by_id, drafts, slot is not None, bool(cursor)), params)
    ).all()
    if not rows:
        raise not_found("canteen", canteen)
    menus: list[dict[str, Any]] = []
    last: Any = None
    for row in rows:
        if row.id is None:  # the canteen has no menus in the range
            continue
        if row.id != last:
            last = row.id
            menus.append(
                {
                    "id": row.id,
                    "canteen_id": row.canteen_id,
                    "meal_date": row.meal_date,
                    "slot": row.slot,
                    "status": row.status,
                    "capacity": row.capacity,
                    "booked": row.booked,
                    "remaining": max(row.capacity - row.booked, 0),
                    "note": row.note,
                    "published_at": row.published_at,
                    "set_meals": [],
                }
            )
        if row.meal_id is None:
            continue
        meal = {
            "name": row.meal_name,
            "kind": row.meal_kind,
            "price_fen": row.meal_price_fen,
            "dishes": [_dish(d) for d in row.meal_dishes],
            "tags": row.meal_tags,
            "id": row.meal_id,
            "suitable": None,
            "conflicts": [],
        }
        if needs is not None:
            conflicts = conflicts_of(row.meal_name, row.meal_tags, row.meal_dishes, needs, dislikes)
            meal.update(suitable=not conflicts, conflicts=conflicts)
            if only_suitable and conflicts:
                continue
        menus[-1]["set_meals"].append(meal)
    has_more = len(menus) > limit
    menus = menus[:limit]
    next_cursor = (
        encode_cursor(menus[-1]["meal_date"].isoformat(), SLOT_RANK[menus[-1]["slot"]]) if has_more and menus else None
    )
    return {"items": menus, "next_cursor": next_cursor}


def _dish(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored dish as ``Dish`` serializes it (its fields, in order, defaults filled)."""
    return {
        "name": stored.get("name", ""),
        "tags": stored.get("tags", []),
        "ingredients": stored.get("ingredients", []),
    }


def week_from(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=6)
