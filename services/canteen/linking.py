"""Linking a family member's app account to a diner by a **one-time code**: canteen staff or the diner's grid
worker issue it for a named relative (``POST /canteen/diners/{id}/family-codes``) and hand it over (a QR code
or read out); the relative's mini-program redeems it (``POST /canteen/me/family-links``) and from then on
sees the diner's orders and care alerts as family.

Only the code's keyed hash is stored. A code links one account once (a retry by the same account answers the
same link), expires (``FAMILY_CODE_TTL``), and every redemption is audited; an account that fails
``MAX_FAILURES`` times within ``FAILURE_WINDOW`` is refused (429) until the window passes, so codes cannot be
guessed (about 59 bits each, too). A forged, expired and already used code get the same answer."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, func, select

from minsheng.contracts.canteen import FamilyMemberLinked
from minsheng.platform.access import ensure
from minsheng.platform.auth import Principal
from minsheng.platform.errors import Problem, conflict, too_many
from minsheng.platform.privacy import FieldCipher
from minsheng.platform.uow import UnitOfWork
from services.canteen import config
from services.canteen.access import Relation
from services.canteen.diners import load_diner
from services.canteen.models import Diner, FamilyCode, FamilyCodeCreate, FamilyLinkAudit, FamilyMember

FAMILY_CODE_TTL = timedelta(hours=72)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out over the phone
_LENGTH = 12


def _normal(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _invalid() -> Problem:
    return Problem(
        422,
        "family_code_invalid",
        "This family code is not valid",
        "Ask the canteen or your grid worker for a new code.",
    )


async def issue(
    uow: UnitOfWork, who: Principal, diner_id: UUID, data: FamilyCodeCreate, fc: FieldCipher
) -> tuple[str, FamilyCode]:
    """A new code for ``diner_id`` (staff of the diner's canteen or community, or their grid worker; 404 for
    anyone else). The code itself is returned once and never stored."""
    diner, _, _, rel, _ = await load_diner(uow, who, diner_id, with_family=False)
    ensure(
        rel == Relation.staff,
        Problem(403, "forbidden_role", "Not allowed", "Only canteen staff or the grid worker issue family codes."),
    )
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    now = config.now()
    code = FamilyCode(
        diner_id=diner.id,
        code_hash=fc.lookup_hash(raw) or "",
        issued_by=who.sub,
        created_at=now,
        expires_at=now + FAMILY_CODE_TTL,
        **data.model_dump(),
    )
    uow.session.add(code)
    uow.session.add(FamilyLinkAudit(subject=who.sub, action="issued", diner_id=diner.id, code_id=code.id, at=now))
    return "-".join(raw[i : i + 4] for i in range(0, _LENGTH, 4)), code


async def _refuse_if_throttled(uow: UnitOfWork, subject: str, now: datetime) -> None:
    since = now - FAILURE_WINDOW
    row = (
        await uow.session.execute(
            select(func.count(), func.min(FamilyLinkAudit.at)).where(
                FamilyLinkAudit.subject == subject, FamilyLinkAudit.action == "failed", FamilyLinkAudit.at > since
            )
        )
    ).one()
    failures, oldest = row
    if failures >= MAX_FAILURES:
        raise too_many(
            "family_code_attempts",
            "Too many wrong codes",
            "Too many wrong family codes; retry in {seconds} s.",
            wait=(oldest + FAILURE_WINDOW - now).total_seconds(),
        )


async def _fail(uow: UnitOfWork, subject: str, code: FamilyCode | None) -> Problem:
    """Record the failed attempt in a transaction of its own (the request's is about to roll back)."""
    diner_id, code_id = (code.diner_id, code.id) if code is not None else (None, None)
    await uow.rollback()
    audit = FamilyLinkAudit(subject=subject, action="failed", diner_id=diner_id, code_id=code_id, at=config.now())
    uow.session.add(audit)
    await uow.commit()
    return _invalid()


async def redeem(uow: UnitOfWork, who: Principal, text: str, fc: FieldCipher) -> Diner:
    """Link the caller's account to the diner the code names, as the family member the code describes."""
    now = config.now()
    await _refuse_if_throttled(uow, who.sub, now)
    raw = _normal(text)
    if len(raw) != _LENGTH:
        raise await _fail(uow, who.sub, None)
    query = select(FamilyCode).where(col(FamilyCode.code_hash).in_(fc.lookup_hashes(raw)))
    if uow.db.is_postgres:
        query = query.with_for_update()
    code = (await uow.session.execute(query)).scalars().first()
    if code is None or code.expires_at <= now or (code.used_by is not None and code.used_by != who.sub):
        raise await _fail(uow, who.sub, code)
    diner = await uow.session.get(Diner, code.diner_id)
    if diner is None:
        raise await _fail(uow, who.sub, code)
    if code.used_by == who.sub:  # a retry of a link that went through
        return diner
    if diner.subject == who.sub:
        raise conflict("family_member_is_diner", "The elder cannot be their own family member.")
    member = (
        await uow.session.execute(
            select(FamilyMember).where(FamilyMember.diner_id == diner.id, FamilyMember.subject == who.sub)
        )
    ).scalar_one_or_none()
    action = "relinked" if member is not None else "linked"
    if member is None:
        member = FamilyMember(
            diner_id=diner.id,
            subject=who.sub,
            name=code.name,
            relation=code.relation,
            can_order=code.can_order,
            can_pay=code.can_pay,
        )
        uow.session.add(member)
    # One use, even against a concurrent redemption on SQLite (no row lock there): only one UPDATE matches.
    used = await uow.session.execute(
        sa.update(FamilyCode)
        .where(col(FamilyCode.id) == code.id, col(FamilyCode.used_at).is_(None))
        .values(used_at=now, used_by=who.sub, member_id=member.id)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise await _fail(uow, who.sub, code)
    uow.session.add(FamilyLinkAudit(subject=who.sub, action=action, diner_id=diner.id, code_id=code.id, at=now))
    if action == "linked":
        uow.emit(
            FamilyMemberLinked(
                diner_id=diner.id,
                member_id=member.id,
                account_id=who.sub,
                relation=member.relation,
                method="door_code",
                linked_at=now,
            )
        )
    return diner
