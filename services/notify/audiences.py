"""Audiences: whom a rule's message reaches for an event — the reporter and followers of an issue, a rider,
a diner's family (their accounts, else their phones), the resident a need is about, the residents of a
compound, the duty group of a community and the staff on its duty roster — as targets with the addresses the
read model holds."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.privacy import FieldCipher, cipher_for, mask_phone
from minsheng.platform.sql import json_list_holds
from minsheng.platform.uow import UnitOfWork
from services.notify import config, roster
from services.notify.fanout import rows_of
from services.notify.models import CareContact, IssueFollower, Recipient, RecordLink
from services.notify.rules import Rule
from services.notify.sealing import in_flight, open_contact, open_recipient, open_shift_phone, seal_contact


def duty_scope(community: str | None) -> str:
    """The WeCom duty group of a community: its own robot when it has one, else the district's ("*")."""
    community = community or "*"
    return community if community in config.get().wecom_robot_keys else "*"


@dataclass
class Target:
    key: str  # account:<sub> | phone:<member id> | wecom:<scope>
    account_id: str | None = None
    locale: str = "zh-CN"
    active: bool = True
    # sealed in flight (services.notify.sealing): the delivery rows bind them to themselves
    openid_enc: str | None = None
    phone_enc: str | None = None
    phone_masked: str | None = None
    wecom_scope: str | None = None


# Built once: the fan-out runs them for every event (building a statement costs more than running it here).
_RECIPIENTS = select(Recipient).where(col(Recipient.account_id).in_(sa.bindparam("ids", expanding=True)))
_LINKED = (
    select(RecordLink.record_id, RecordLink.account_id)
    .where(
        RecordLink.record == sa.bindparam("record"), col(RecordLink.record_id).in_(sa.bindparam("ids", expanding=True))
    )
    .order_by(col(RecordLink.record_id), col(RecordLink.account_id))
)


async def _recipients(uow: UnitOfWork, account_ids: list[str]) -> dict[str, Recipient]:
    """The read model's rows of ``account_ids``: one query (none for no ids)."""
    if not account_ids:
        return {}
    rows = await uow.session.execute(_RECIPIENTS, {"ids": list(set(account_ids))})
    return {r.account_id: r for r in rows.scalars()}


def _target_of(
    fc: FieldCipher,
    account_id: str,
    r: Recipient | None,
    *,
    phone_enc: str | None = None,
    phone_masked: str | None = None,
) -> Target:
    t = Target(key=f"account:{account_id}", account_id=account_id, phone_enc=phone_enc, phone_masked=phone_masked)
    if r is not None:
        t.locale, t.active = r.locale, r.status == "active"
        if r.openid_enc:
            t.openid_enc = in_flight(fc, open_recipient(fc, "openid_enc", r.account_id, r.openid_enc))
        if r.phone_enc:  # the account's own verified phone wins over one another service holds
            t.phone_enc = in_flight(fc, open_recipient(fc, "phone_enc", r.account_id, r.phone_enc))
            t.phone_masked = r.phone_masked
    return t


async def _account_targets(uow: UnitOfWork, account_ids: list[str]) -> list[Target]:
    ids = list(dict.fromkeys(account_ids))
    known = await _recipients(uow, ids)
    fc = cipher_for(uow.db)
    return [_target_of(fc, a, known.get(a)) for a in ids]


async def account_target(uow: UnitOfWork, account_id: str) -> Target:
    return (await _account_targets(uow, [account_id]))[0]


async def _linked_to(uow: UnitOfWork, record: str, record_ids: list[str]) -> dict[str, list[str]]:
    """record id → the accounts linked to it, for many records in one query."""
    if not record_ids:
        return {}
    rows = await uow.session.execute(_LINKED, {"record": record, "ids": list(set(record_ids))})
    linked: dict[str, list[str]] = {}
    for record_id, account_id in rows:
        linked.setdefault(record_id, []).append(account_id)
    return linked


async def linked_accounts(uow: UnitOfWork, record: str, record_id: str) -> list[str]:
    return (await _linked_to(uow, record, [record_id])).get(record_id, [])


async def _residents_in(uow: UnitOfWork, scope: str) -> list[str]:
    """Active resident accounts whose scopes (from identity's account events) include ``scope``."""
    pg = uow.db.is_postgres
    query = select(col(Recipient.account_id)).where(
        Recipient.status == "active",
        json_list_holds(col(Recipient.roles), "resident", postgres=pg),
        json_list_holds(col(Recipient.scopes), scope, postgres=pg),
    )
    return list((await uow.session.execute(query.order_by(col(Recipient.account_id)))).scalars())


async def _family_targets(uow: UnitOfWork, contacts: list[tuple[str, str | None, str | None]]) -> list[Target]:
    """(member id, subject, phone sealed in flight) → targets: the member's account when notify knows one (by their
    login or an AccountLinked canteen.family), else their phone alone. Two queries for all the members."""
    fc = cipher_for(uow.db)
    linked = await _linked_to(uow, "canteen.family", [m for m, _, _ in contacts])
    known = await _recipients(
        uow, [a for accounts in linked.values() for a in accounts] + [s for _, s, _ in contacts if s]
    )
    targets: list[Target] = []
    for member_id, subject, phone_enc in contacts:
        masked = mask_phone(fc.decrypt(phone_enc)) if phone_enc else None
        accounts = linked.get(member_id, [])
        if subject and not accounts and subject in known:
            accounts = [subject]
        if accounts:
            targets += [_target_of(fc, a, known.get(a), phone_enc=phone_enc, phone_masked=masked) for a in accounts]
        elif phone_enc:
            targets.append(Target(key=f"phone:{member_id}", phone_enc=phone_enc, phone_masked=masked))
    return targets


async def _on_duty_targets(uow: UnitOfWork, community: str | None) -> list[Target]:
    """The staff on duty now for ``community`` and for the district (the roster), each once: their verified
    phone from identity's account events, else the phone entered with their shift."""
    shifts = await roster.on_duty(uow, community, utcnow())
    known = await _recipients(uow, [s.account_id for s in shifts])
    fc = cipher_for(uow.db)
    targets: dict[str, Target] = {}
    for s in shifts:
        if s.account_id not in targets or (s.phone_enc and not targets[s.account_id].phone_enc):
            phone = in_flight(fc, open_shift_phone(fc, s.id, s.phone_enc)) if s.phone_enc else None
            targets[s.account_id] = _target_of(
                fc, s.account_id, known.get(s.account_id), phone_enc=phone, phone_masked=s.phone_masked
            )
    return list(targets.values())


async def _reporter_targets(uow: UnitOfWork, reporter: str) -> list[Target]:
    if reporter.startswith("rider:"):  # an issue opened from a rider's report names the points rider
        return await _account_targets(uow, await linked_accounts(uow, "points.rider", reporter.removeprefix("rider:")))
    return await _account_targets(uow, [reporter])


async def _followers(uow: UnitOfWork, issue_id: str) -> list[str]:
    rows = await uow.session.execute(
        select(IssueFollower.subject).where(IssueFollower.issue_id == issue_id).order_by(col(IssueFollower.subject))
    )
    return [s for (s,) in rows]


async def audience(uow: UnitOfWork, rule: Rule, event: IntegrationEvent) -> list[Target]:
    fields = event.__dict__
    if rule.audience == "reporter":
        reporter = fields.get("reporter")
        return await _reporter_targets(uow, reporter) if reporter else []
    if rule.audience == "reporter_and_followers":  # 件件有回音: everyone who reported it or follows it
        subjects = [fields["reporter"]] if fields.get("reporter") else []
        subjects += await _followers(uow, str(fields["issue_id"]))
        rider_ids = [s.removeprefix("rider:") for s in subjects if s.startswith("rider:")]
        riders = await _linked_to(uow, "points.rider", rider_ids)
        accounts = [
            a for s in subjects for a in (riders.get(s.removeprefix("rider:"), []) if s.startswith("rider:") else [s])
        ]
        return await _account_targets(uow, accounts)
    if rule.audience == "rider":
        return await _account_targets(uow, await linked_accounts(uow, "points.rider", str(fields["rider_id"])))
    if rule.audience == "family":
        fc = cipher_for(uow.db)
        alert_id = str(fields["alert_id"])
        contacts = []
        queued = rows_of(uow).care_contacts
        for c in fields.get("family_contacts") or []:
            contact_id = uuid7()
            contacts.append((str(c.member_id), c.subject, in_flight(fc, c.phone) if c.phone else None))
            queued.append(
                {
                    "id": contact_id,
                    "alert_id": alert_id,
                    "member_id": str(c.member_id),
                    "subject": c.subject,
                    "phone_enc": seal_contact(fc, contact_id, c.phone) if c.phone else None,
                    "created_at": utcnow(),
                }
            )
        return await _family_targets(uow, contacts)
    if rule.audience == "alert_family":
        if not fields.get("alert_id"):
            return []
        alert_id = str(fields["alert_id"])
        fc = cipher_for(uow.db)
        stored = await uow.session.execute(
            select(CareContact.id, CareContact.member_id, CareContact.subject, CareContact.phone_enc).where(
                CareContact.alert_id == alert_id
            )
        )
        queued_contacts = [
            (c["id"], c["member_id"], c["subject"], c["phone_enc"]) for c in rows_of(uow).contacts_of(alert_id)
        ]
        contacts = [
            (m, s, in_flight(fc, open_contact(fc, i, p)) if p else None) for i, m, s, p in [*stored, *queued_contacts]
        ]
        return await _family_targets(uow, sorted(contacts, key=lambda c: c[0]))
    if rule.audience == "need_resident":  # the resident a need is about, through their linked account(s)
        if not fields.get("resident_id"):
            return []
        return await _account_targets(uow, await linked_accounts(uow, "visits.resident", str(fields["resident_id"])))
    if rule.audience == "diner_family":  # the family members' logins the order event names (no phones)
        return await _account_targets(uow, list(fields.get("family_subjects") or []))
    if rule.audience == "vote_residents":
        scope = f"compound:{fields['compound']}" if fields.get("compound") else f"community:{fields['community']}"
        return await _account_targets(uow, await _residents_in(uow, scope))
    if rule.audience == "duty_staff":
        scope = duty_scope(fields.get("community"))
        return [Target(key=f"wecom:{scope}", wecom_scope=scope)]
    if rule.audience == "grid_worker":  # the grid worker a visit task went to, by their app account
        subject = fields.get("worker_subject")
        return await _account_targets(uow, [subject]) if subject else []
    if rule.audience == "on_duty_staff":
        return await _on_duty_targets(uow, fields.get("community"))
    raise ValueError(f"unknown audience {rule.audience}")
