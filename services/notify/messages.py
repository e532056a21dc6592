"""Fan-out: an event becomes a message per recipient (the in-app inbox entry) and a delivery per channel it
goes by, or a line of a daily digest or a monthly bill.

Fan-out runs inside the consumer's unit of work: the inbox row of the consumed event, every message and every
delivery row commit together (``fanout.py`` writes them at the commit), so a redelivered event changes
nothing and a crash leaves either all of it or none. The sender loop (``sender.py``) sends what is due
afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.envelope import CloudEvent
from minsheng.platform.ids import utcnow, uuid7
from minsheng.platform.privacy import FieldCipher, cipher_for
from minsheng.platform.uow import UnitOfWork
from services.notify import config
from services.notify.audiences import Target, audience, duty_scope
from services.notify.fanout import FanOutRows, rows_of
from services.notify.models import Channel, DeliveryStatus, DigestItem, Preference
from services.notify.rules import Rule, context, fill, render, rulebook, wechat_data
from services.notify.sealing import open_address, seal_address

_PREFERENCES = select(Preference).where(col(Preference.account_id).in_(sa.bindparam("ids", expanding=True)))


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
        fc = cipher_for(uow.db)
        for target in targets:
            prefs_of = prefs.get(target.account_id) if target.account_id else None
            written += _message(queued, fc, rule, event, envelope, target, prefs_of)
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
    fc: FieldCipher,
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
        delivery_id = uuid7()
        if channel in (Channel.wechat, Channel.sms):  # sealed, bound to the delivery (a WeCom scope is not)
            address_enc = seal_address(fc, delivery_id, address_enc)
        return {
            "id": delivery_id,
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


def decrypt_address(fc: FieldCipher, delivery_channel: str, address_enc: str | None, delivery_id: Any) -> str | None:
    if delivery_channel == Channel.wecom.value:
        return address_enc  # the robot scope: not personal data
    return open_address(fc, delivery_id, address_enc)
