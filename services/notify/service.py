"""Use cases: keep the recipient read model, and turn an event into messages and deliveries.

Fan-out runs inside the consumer's unit of work: the inbox row of the consumed event, every message (the
in-app inbox entry) and every delivery row commit together, so a redelivered event changes nothing and a
crash leaves either all of it or none. The sender loop (``sender.py``) sends what is due afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, select

from minsheng.contracts.base import IntegrationEvent
from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountLinked,
    AccountStatusChanged,
)
from minsheng.contracts.issues import IssueMerged
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.privacy import FieldCipher, mask_phone
from minsheng.platform.uow import UnitOfWork
from services.notify import config
from services.notify.fanout import FanOutRows, rows_of
from services.notify.models import (
    CareContact,
    Channel,
    DeliveryStatus,
    DigestItem,
    IssueFollower,
    Preference,
    Recipient,
    RecordLink,
)
from services.notify.rules import Rule, context, fill, render, rulebook, wechat_data
from services.notify.state import cipher_for

log = logging.getLogger(__name__)


# --- the recipient read model --------------------------------------------------------------------------------


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
    r.openid_enc = fc.encrypt(event.wechat_openid)
    r.phone_enc = fc.encrypt(event.phone)
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


def duty_scope(community: str | None) -> str:
    """The WeCom duty group of a community: its own robot when it has one, else the district's ("*")."""
    community = community or "*"
    return community if community in config.get().wecom_robot_keys else "*"


# --- audiences -------------------------------------------------------------------------------------------------


@dataclass
class Target:
    key: str  # account:<sub> | phone:<member id> | wecom:<scope>
    account_id: str | None = None
    locale: str = "zh-CN"
    active: bool = True
    openid_enc: str | None = None
    phone_enc: str | None = None
    phone_masked: str | None = None
    wecom_scope: str | None = None


# Built once: the fan-out runs them for every event (building a statement costs more than running it here).
_RECIPIENTS = select(Recipient).where(col(Recipient.account_id).in_(sa.bindparam("ids", expanding=True)))
_PREFERENCES = select(Preference).where(col(Preference.account_id).in_(sa.bindparam("ids", expanding=True)))
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
    account_id: str, r: Recipient | None, *, phone_enc: str | None = None, phone_masked: str | None = None
) -> Target:
    t = Target(key=f"account:{account_id}", account_id=account_id, phone_enc=phone_enc, phone_masked=phone_masked)
    if r is not None:
        t.locale, t.active, t.openid_enc = r.locale, r.status == "active", r.openid_enc
        if r.phone_enc:  # the account's own verified phone wins over one another service holds
            t.phone_enc, t.phone_masked = r.phone_enc, r.phone_masked
    return t


async def _account_targets(uow: UnitOfWork, account_ids: list[str]) -> list[Target]:
    ids = list(dict.fromkeys(account_ids))
    known = await _recipients(uow, ids)
    return [_target_of(a, known.get(a)) for a in ids]


async def _account_target(uow: UnitOfWork, account_id: str) -> Target:
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


async def _linked_accounts(uow: UnitOfWork, record: str, record_id: str) -> list[str]:
    return (await _linked_to(uow, record, [record_id])).get(record_id, [])


async def _residents_in(uow: UnitOfWork, scope: str) -> list[str]:
    """Active resident accounts whose scopes (from identity's account events) include ``scope``."""
    scopes = col(Recipient.scopes)
    query = select(Recipient).where(Recipient.status == "active")
    if uow.db.is_postgres:
        query = query.where(scopes.op("@>")(sa.cast([scope], JSONB)))
    else:
        query = query.where(sa.cast(scopes, sa.Text).like(f'%"{scope}"%'))
    rows = (await uow.session.execute(query.order_by(col(Recipient.account_id)))).scalars()
    return [r.account_id for r in rows if "resident" in r.roles and scope in r.scopes]


async def _family_targets(uow: UnitOfWork, contacts: list[tuple[str, str | None, str | None]]) -> list[Target]:
    """(member id, subject, encrypted phone) → targets: the member's account when notify knows one (by their
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
            targets += [_target_of(a, known.get(a), phone_enc=phone_enc, phone_masked=masked) for a in accounts]
        elif phone_enc:
            targets.append(Target(key=f"phone:{member_id}", phone_enc=phone_enc, phone_masked=masked))
    return targets


async def _reporter_targets(uow: UnitOfWork, reporter: str) -> list[Target]:
    if reporter.startswith("rider:"):  # an issue opened from a rider's report names the points rider
        return await _account_targets(uow, await _linked_accounts(uow, "points.rider", reporter.removeprefix("rider:")))
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
        return await _account_targets(uow, await _linked_accounts(uow, "points.rider", str(fields["rider_id"])))
    if rule.audience == "family":
        fc = cipher_for(uow.db)
        alert_id = str(fields["alert_id"])
        contacts = []
        queued = rows_of(uow).care_contacts
        for c in fields.get("family_contacts") or []:
            phone_enc = fc.encrypt(c.phone) if c.phone else None
            contacts.append((str(c.member_id), c.subject, phone_enc))
            queued.append(
                {
                    "id": uuid7(),
                    "alert_id": alert_id,
                    "member_id": str(c.member_id),
                    "subject": c.subject,
                    "phone_enc": phone_enc,
                    "created_at": utcnow(),
                }
            )
        return await _family_targets(uow, contacts)
    if rule.audience == "alert_family":
        if not fields.get("alert_id"):
            return []
        alert_id = str(fields["alert_id"])
        stored = await uow.session.execute(
            select(CareContact.member_id, CareContact.subject, CareContact.phone_enc).where(
                CareContact.alert_id == alert_id
            )
        )
        contacts = [(m, s, p) for m, s, p in stored]
        contacts += [(c["member_id"], c["subject"], c["phone_enc"]) for c in rows_of(uow).contacts_of(alert_id)]
        return await _family_targets(uow, sorted(contacts, key=lambda c: c[0]))
    if rule.audience == "need_resident":  # the resident a need is about, through their linked account(s)
        if not fields.get("resident_id"):
            return []
        return await _account_targets(uow, await _linked_accounts(uow, "visits.resident", str(fields["resident_id"])))
    if rule.audience == "diner_family":  # the family members' logins the order event names (no phones)
        return await _account_targets(uow, list(fields.get("family_subjects") or []))
    if rule.audience == "vote_residents":
        scope = f"compound:{fields['compound']}" if fields.get("compound") else f"community:{fields['community']}"
        return await _account_targets(uow, await _residents_in(uow, scope))
    if rule.audience == "duty_staff":
        scope = duty_scope(fields.get("community"))
        return [Target(key=f"wecom:{scope}", wecom_scope=scope)]
    raise ValueError(f"unknown audience {rule.audience}")


# --- fan-out -----------------------------------------------------------------------------------------------


async def _preferences(uow: UnitOfWork, account_ids: list[str]) -> dict[str, Preference]:
    """The preferences of ``account_ids``: one query (none for no ids)."""
    if not account_ids:
        return {}
    rows = await uow.session.execute(_PREFERENCES, {"ids": list(set(account_ids))})
    return {p.account_id: p for p in rows.scalars()}


def _due(rule: Rule, now: datetime) -> tuple[str, datetime]:
    s = config.get()
    if not rule.urgent and s.in_quiet_hours(now):
        return DeliveryStatus.held.value, s.quiet_hours_end(now)
    return DeliveryStatus.pending.value, now


async def fan_out(uow: UnitOfWork, event: IntegrationEvent, envelope: CloudEvent) -> int:
    """Every rule that matches the event: a message per recipient, a delivery per channel. Returns the
    number of messages written."""
    written = 0
    fields = event.__dict__
    for rule in rulebook().for_event(envelope.type):
        if not rule.matches(fields):
            continue
        if rule.audience == "digest":
            await _queue_for_digest(uow, rule, event, envelope, duty_scope(fields.get("community")))
            continue
        if rule.audience == "bill":
            if fields.get("resident_id"):
                await _queue_for_digest(uow, rule, event, envelope, f"resident:{fields['resident_id']}")
            continue
        targets = await audience(uow, rule, event)
        if not targets:
            continue
        prefs = await _preferences(uow, [t.account_id for t in targets if t.account_id])
        queued = rows_of(uow)
        for target in targets:
            prefs_of = prefs.get(target.account_id) if target.account_id else None
            written += _message(queued, rule, event, envelope, target, prefs_of)
    return written


async def _queue_for_digest(
    uow: UnitOfWork, rule: Rule, event: IntegrationEvent, envelope: CloudEvent, scope: str
) -> None:
    """A line for the duty group's next daily digest (``jobs.send_digests``) or the resident's next monthly
    bill (``jobs.send_bills``), rendered now in zh-CN."""
    values = context(event, "zh-CN")
    community = event.__dict__.get("community")
    exists = (
        await uow.session.execute(
            select(DigestItem.id).where(DigestItem.event_id == str(envelope.id), DigestItem.rule == rule.id)
        )
    ).first()
    if exists is None:
        occurred = next(
            (v for v in (getattr(event, f, None) for f in ("occurred_at", "escalated_at")) if isinstance(v, datetime)),
            utcnow(),
        )
        uow.session.add(
            DigestItem(
                event_id=str(envelope.id),
                rule=rule.id,
                scope=scope,
                community=community,
                line=render(rule, values, "zh-CN").body[:500],
                occurred_at=occurred,
            )
        )


def _message(
    queued: FanOutRows,
    rule: Rule,
    event: IntegrationEvent,
    envelope: CloudEvent,
    target: Target,
    prefs: Preference | None,
) -> int:
    """Queue the message for ``target`` and a delivery per channel it goes by (written at commit)."""
    values = context(event, target.locale)
    text = render(rule, values, target.locale)
    now = utcnow()
    message_id = uuid7()
    message = {
        "id": message_id,
        "account_id": target.account_id,
        "recipient_key": target.key,
        "event_id": str(envelope.id),
        "event_type": envelope.type,
        "rule": rule.id,
        "urgent": rule.urgent,
        "title": text.title[:200],
        "body": text.body,
        "link": fill(rule.link, values) if rule.link else None,
        "locale": target.locale,
        "subject_ref": fill(rule.subject, values) if rule.subject else None,
        "created_at": now,
        "read_at": None,
    }
    muted = prefs is not None and rule.id in prefs.rules_off and not rule.urgent
    channels_off = set(prefs.channels_off) if prefs is not None else set()
    status, due = _due(rule, now)

    def delivery(
        channel: Channel,
        address_enc: str | None,
        address_masked: str | None,
        request: dict[str, Any],
        *,
        sent: bool = False,
    ) -> dict[str, Any]:
        d_status = DeliveryStatus.sent.value if sent else status
        if not sent and (channel.value in channels_off or muted or not target.active):
            d_status = DeliveryStatus.skipped.value
        return {
            "id": uuid7(),
            "message_id": message_id,
            "recipient_key": target.key,
            "channel": channel.value,
            "status": d_status,
            "urgent": rule.urgent,
            "attempts": 0,
            "next_attempt_at": now if sent else due,
            "lease_until": None,
            "address_enc": address_enc,
            "address_masked": address_masked,
            "request": request,
            "error_class": None,
            "last_error": None,
            "provider_ref": None,
            "fallback_of": None,
            "created_at": now,
            "sent_at": now if sent else None,
            "updated_at": now,
        }

    rows: list[dict[str, Any]] = []
    if "inbox" in rule.channels and target.account_id:
        rows.append(delivery(Channel.inbox, None, None, {}, sent=True))
    sms_request = _sms_request(rule, values, text.body)
    sms_fallback = None
    if target.phone_enc and rule.sms != "never":
        sms_fallback = {"address_enc": target.phone_enc, "address_masked": target.phone_masked, "request": sms_request}
    wechat_planned = False
    if "wechat" in rule.channels and target.openid_enc and rule.wechat is not None:
        request: dict[str, Any] = {
            "template_id": rule.wechat.template_id,
            "data": wechat_data(rule, values),
            "page": fill(rule.link, values) if rule.link else None,
            "lang": "en_US" if target.locale == "en" else "zh_CN",
            "account_id": target.account_id,
        }
        if sms_fallback and rule.sms == "fallback":
            request["fallback"] = sms_fallback
        rows.append(delivery(Channel.wechat, target.openid_enc, "openid:***", request))
        wechat_planned = rows[-1]["status"] != DeliveryStatus.skipped.value
    wants_sms = rule.sms == "always" or (rule.sms == "fallback" and not wechat_planned)
    if "sms" in rule.channels and sms_fallback and wants_sms:
        rows.append(delivery(Channel.sms, target.phone_enc, target.phone_masked, sms_request))
    if "wecom" in rule.channels and target.wecom_scope:
        rows.append(
            delivery(
                Channel.wecom,
                target.wecom_scope,
                target.wecom_scope,
                {"msgtype": "markdown", "content": text.body},
            )
        )
    return 1 if queued.add_message(message, rows) else 0


def _sms_request(rule: Rule, values: dict[str, Any], body: str) -> dict[str, Any]:
    if rule.sms_template is None:
        return {"template_id": "", "params": [body[:60]]}
    return {"template_id": rule.sms_template.id, "params": [fill(p, values) for p in rule.sms_template.params]}


def decrypt_address(fc: FieldCipher, delivery_channel: str, address_enc: str | None) -> str | None:
    if delivery_channel == Channel.wecom.value:
        return address_enc  # the robot scope: not personal data
    return fc.decrypt(address_enc)
