"""Linking a resident's app account to their record, two ways. Typed ID numbers and phones are not proof of
anything — both leak widely — so they no longer link an account.

1. A **door code**: a grid worker (or staff) in scope issues it for one resident, shows it at the door (a QR
   code in their app), and the resident's mini-program scans it and sends it to ``POST /visits/me/link``.
   The code is stateless: the resident id and an expiry, authenticated with a keyed MAC (HMAC-SHA256,
   truncated to 80 bits, a key derived for this purpose only). It links once in effect — a resident linked
   to one account answers 409 to any other — and it expires (``DOOR_CODE_TTL``).
2. The account's **WeChat-verified phone** (identity's ``AccountContactChanged``, kept sealed in
   ``account_phones``) matching the resident's phone by keyed hash, **plus the grid worker's confirmation**:
   ``POST /visits/me/link-requests`` opens a pending request per matching resident; the grid worker or staff
   of the household confirms or rejects it; nothing is linked before. A phone alone proves only that the
   person holds that number — families share phones and numbers are recycled — hence the confirmation.

Either way visits publishes ``ResidentAccountLinked`` so notify knows who is behind the resident."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.identity import AccountContactChanged
from minsheng.contracts.visits import ResidentAccountLinked
from minsheng.platform.access import visible_or_404
from minsheng.platform.errors import Problem, UniqueRule, conflict, wrong_status
from minsheng.platform.i18n import _t
from minsheng.platform.ids import utcnow
from minsheng.platform.pagination import Keyset, Page, PageRequest
from minsheng.platform.privacy import FieldCipher, cipher_for, seal_phone_on
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings
from services.visits.access import Viewer, writes
from services.visits.models import AccountPhone, LinkRequest, LinkRequestStatus, Resident, ResidentStatus

DOOR_CODE_TTL = timedelta(hours=72)
ACCOUNT_LINKED_ELSEWHERE = UniqueRule(
    Resident, ["account_subject"], "account_already_linked", "This app account is linked to another resident."
)
_MAC_BYTES = 10


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.secret.encode(), b"minsheng-visits-door-code-v1", hashlib.sha256).digest()


def issue(settings: Settings, resident_id: UUID, *, now: float | None = None) -> tuple[str, datetime]:
    expires = int((time.time() if now is None else now) + DOOR_CODE_TTL.total_seconds())
    payload = resident_id.bytes + expires.to_bytes(5, "big")
    mac = hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    code = base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")
    return "dc1." + code, datetime.fromtimestamp(expires, UTC)


def verify(settings: Settings, code: str) -> UUID:
    """The resident a valid, unexpired door code names; 422 for anything else (the same answer for a forged
    and an expired code)."""
    invalid = Problem(422, "door_code_invalid", "This door code is not valid", "Ask your grid worker for a new code.")
    if not code.startswith("dc1.") or len(code) > 80:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(code[4:] + "=" * (-len(code[4:]) % 4))
    except (ValueError, TypeError):
        raise invalid from None
    if len(raw) != 16 + 5 + _MAC_BYTES:
        raise invalid
    payload, mac = raw[:21], raw[21:]
    if not hmac.compare_digest(hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_MAC_BYTES], mac):
        raise invalid
    if int.from_bytes(payload[16:21], "big") < time.time():
        raise invalid
    return UUID(bytes=payload[:16])


# --- the verified phone plus the grid worker's confirmation -------------------------------------------------


async def account_contact_changed(uow: UnitOfWork, event: AccountContactChanged) -> None:
    """Keep the account's verified phone, sealed; forget it when the account removed it."""
    subject = str(event.account_id)
    row = (
        await uow.session.execute(select(AccountPhone).where(AccountPhone.account_subject == subject))
    ).scalar_one_or_none()
    if event.phone is None:
        if row is not None:
            await uow.session.delete(row)
        return
    if row is None:
        row = AccountPhone(account_subject=subject)
        uow.session.add(row)
    row.phone, row.phone_enc, row.updated_at = event.phone, None, utcnow()
    seal_phone_on(row, cipher_for(uow.db))


async def _verified_phone_hashes(uow: UnitOfWork, cipher: FieldCipher, subject: str) -> list[str]:
    row = (
        await uow.session.execute(select(AccountPhone).where(AccountPhone.account_subject == subject))
    ).scalar_one_or_none()
    phone = cipher.open(row.phone_enc, "account_phones", "phone_enc", row.id) if row is not None else None
    if phone is None:
        raise conflict(
            "phone_not_verified",
            "Your account has no WeChat-verified phone yet: bind it in the mini-program (POST /identity/wechat/phone)"
            " or ask your grid worker for a door code.",
        )
    return cipher.lookup_hashes(phone)


async def request_by_phone(uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher) -> list[LinkRequest]:
    """Open (or find again) a pending link request for each active, unlinked resident whose phone is the
    caller's verified phone. The answer does not say whom it matched."""
    if viewer.resident is not None:
        raise conflict("account_already_linked", "Your account is linked to a resident already.")
    hashes = await _verified_phone_hashes(uow, cipher, viewer.sub)
    residents = (
        await uow.session.execute(
            select(Resident)
            .where(
                col(Resident.phone_hash).in_(hashes),
                Resident.status == ResidentStatus.active,
                col(Resident.account_subject).is_(None),
            )
            .order_by(col(Resident.id))
        )
    ).scalars()
    requests: list[LinkRequest] = []
    for resident in residents:
        found = (
            await uow.session.execute(
                select(LinkRequest).where(
                    LinkRequest.resident_id == resident.id, LinkRequest.account_subject == viewer.sub
                )
            )
        ).scalar_one_or_none()
        if found is None:
            found = LinkRequest(
                resident_id=resident.id,
                account_subject=viewer.sub,
                community=resident.community,
                compound=resident.compound,
                building_id=resident.building_id,
            )
            uow.session.add(found)
        requests.append(found)
    if not requests:
        raise Problem(
            404,
            "no_resident_for_phone",
            "No resident record has your phone",
            "Ask your grid worker to record your phone, or for a door code.",
        )
    return requests


async def my_requests(uow: UnitOfWork, viewer: Viewer) -> list[LinkRequest]:
    rows = await uow.session.execute(
        select(LinkRequest).where(LinkRequest.account_subject == viewer.sub).order_by(col(LinkRequest.id))
    )
    return list(rows.scalars())


async def requests_to_decide(
    uow: UnitOfWork, viewer: Viewer, *, status: LinkRequestStatus | None, page: PageRequest
) -> Page[tuple[LinkRequest, Resident]]:
    """The link requests of the households the caller may change (grid worker there, staff in scope)."""
    query = (
        select(LinkRequest, Resident)
        .join(Resident, col(Resident.id) == col(LinkRequest.resident_id))
        .where(viewer.clause(LinkRequest))
    )
    if status is not None:
        query = query.where(LinkRequest.status == status)
    by_id = Keyset.by_id(LinkRequest)
    rows = [(request, resident) for request, resident in await uow.session.execute(by_id.query(query, page))]
    return by_id.page(rows, page, item=lambda row: row[0])


async def decide(
    uow: UnitOfWork, viewer: Viewer, cipher: FieldCipher, request_id: UUID, *, confirm: bool, reason: str | None
) -> tuple[LinkRequest, Resident]:
    """The grid worker (or staff) of the household confirms — the account is linked — or rejects. Anyone else
    gets 404. Deciding again the same way answers the same; the other way is a 409."""
    request = visible_or_404(
        await uow.session.get(LinkRequest, request_id, with_for_update=uow.db.is_postgres),
        lambda r: writes(viewer, r),
        "link_request",
        request_id,
    )
    resident = await uow.session.get(Resident, request.resident_id, with_for_update=uow.db.is_postgres)
    assert resident is not None  # a foreign key
    wanted = LinkRequestStatus.confirmed if confirm else LinkRequestStatus.rejected
    if request.status == wanted:
        return request, resident
    if request.status != LinkRequestStatus.pending:
        raise wrong_status(
            "link_request_decided",
            _t("This link request was {status} already.", status=request.status),
            current_status=request.status,
        )
    if confirm:
        # The phone may have changed since the request: the match must still hold when the link is made.
        if resident.phone_hash not in await _verified_phone_hashes(uow, cipher, request.account_subject):
            raise conflict("phone_changed", "The account's or the resident's phone changed since the request.")
        await link_account(uow, resident, request.account_subject, method="verified_phone", by=viewer.sub)
        await uow.session.execute(
            sa.update(LinkRequest)
            .where(
                col(LinkRequest.account_subject) == request.account_subject,
                col(LinkRequest.status) == LinkRequestStatus.pending,
                col(LinkRequest.id) != request.id,
            )
            .values(status=LinkRequestStatus.withdrawn, decided_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    request.status, request.decided_at, request.decided_by, request.reason = wanted, utcnow(), viewer.sub, reason
    return request, resident


async def link_account(uow: UnitOfWork, resident: Resident, subject: str, *, method: str, by: str | None) -> None:
    """Link ``subject`` to ``resident`` (409 if the account is another resident's or the resident another
    account's) and publish it; linking the same pair again does nothing."""
    if resident.account_subject == subject:
        return
    if resident.account_subject is not None:
        raise conflict("account_already_linked", "This resident is linked to another app account.")
    taken = await uow.session.execute(
        select(Resident.id).where(Resident.account_subject == subject, Resident.id != resident.id)
    )
    if taken.first() is not None:
        raise ACCOUNT_LINKED_ELSEWHERE.problem()
    now = utcnow()
    resident.account_subject, resident.updated_at = subject, now
    uow.emit(
        ResidentAccountLinked(
            resident_id=resident.id,
            account_id=subject,
            method=method,  # type: ignore[arg-type]
            confirmed_by=by,
            linked_at=now,
        )
    )
