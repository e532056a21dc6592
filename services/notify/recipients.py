"""The recipient read model: who the accounts are (kind, roles, scopes, status, locale, sealed contact
details, from identity's account events), which account stands behind another service's record
(``AccountLinked``, ``ResidentAccountLinked``, ``FamilyMemberLinked``), and who follows which issue. Kept by
``handlers``; never commits."""

from __future__ import annotations

from sqlmodel import select

from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountLinked,
    AccountStatusChanged,
)
from minsheng.contracts.issues import IssueMerged
from minsheng.platform.ids import utcnow
from minsheng.platform.privacy import cipher_for, mask_phone
from minsheng.platform.uow import UnitOfWork
from services.notify.models import IssueFollower, Recipient, RecordLink
from services.notify.sealing import seal_recipient


async def _recipient(uow: UnitOfWork, account_id: str) -> Recipient:
    found = await uow.session.get(Recipient, account_id)
    if found is None:
        found = Recipient(account_id=account_id)
        uow.session.add(found)
    return found


async def account_created(uow: UnitOfWork, event: AccountCreated) -> None:
    r = await _recipient(uow, str(event.account_id))
    r.kind, r.roles, r.scopes, r.locale, r.updated_at = event.kind, event.roles, event.scopes, event.locale, utcnow()


async def access_changed(uow: UnitOfWork, event: AccountAccessChanged) -> None:
    r = await _recipient(uow, str(event.account_id))
    r.roles, r.scopes, r.updated_at = event.roles, event.scopes, utcnow()


async def status_changed(uow: UnitOfWork, event: AccountStatusChanged) -> None:
    r = await _recipient(uow, str(event.account_id))
    r.status, r.updated_at = event.status, utcnow()


async def contact_changed(uow: UnitOfWork, event: AccountContactChanged) -> None:
    fc = cipher_for(uow.db)
    r = await _recipient(uow, str(event.account_id))
    r.openid_enc = seal_recipient(fc, "openid_enc", r.account_id, event.wechat_openid)
    r.phone_enc = seal_recipient(fc, "phone_enc", r.account_id, event.phone)
    r.phone_masked = mask_phone(event.phone)
    r.locale = event.locale
    r.updated_at = utcnow()


async def account_linked(uow: UnitOfWork, event: AccountLinked) -> None:
    await record_linked(uow, event.record, str(event.record_id), str(event.account_id))


async def record_linked(uow: UnitOfWork, record: str, record_id: str, account_id: str) -> None:
    """Remember that ``account_id`` is the person behind ``record`` ``record_id`` (``visits.resident``,
    ``canteen.family``, ``points.rider`` …), whichever service made the link."""
    exists = (
        await uow.session.execute(
            select(RecordLink.id).where(
                RecordLink.record == record, RecordLink.record_id == record_id, RecordLink.account_id == account_id
            )
        )
    ).first()
    if exists is None:
        uow.session.add(RecordLink(record=record, record_id=record_id, account_id=account_id))


async def issue_followed(uow: UnitOfWork, issue_id: str, subject: str, role: str) -> None:
    exists = (
        await uow.session.execute(
            select(IssueFollower.id).where(IssueFollower.issue_id == issue_id, IssueFollower.subject == subject)
        )
    ).first()
    if exists is None:
        uow.session.add(IssueFollower(issue_id=issue_id, subject=subject, role=role))


async def issue_merged(uow: UnitOfWork, event: IssueMerged) -> None:
    """The merged issue's reporter and followers follow the issue it went into (as issues moved them)."""
    rows = await uow.session.execute(
        select(IssueFollower.subject, IssueFollower.role).where(IssueFollower.issue_id == str(event.issue_id))
    )
    moving = [(s, r) for s, r in rows] + ([(event.reporter, "reporter")] if event.reporter else [])
    for subject, role in moving:
        await issue_followed(uow, str(event.into_issue_id), subject, role)
