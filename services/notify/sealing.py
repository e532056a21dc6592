"""Notify's sealed values at rest, each bound to its place (table, column, row id): a value copied to another
row or column no longer decrypts. Values sealed before they were bound (issue 13: no associated data) still
read, until ``minsheng keys rotate-data`` rewrites them bound (the tables are declared in ``app.SPEC.sealed``).

In flight — a fan-out's targets, a WeChat delivery's SMS fallback in its request — an address is sealed without
associated data (it has no row of its own yet); a delivery row seals it again, bound to the delivery."""

from __future__ import annotations

from typing import Any

from minsheng.platform.privacy import FieldCipher

RECIPIENTS = "recipients"  # openid_enc, phone_enc; row id: the account id
CARE_CONTACTS = "care_contacts"  # phone_enc; the contact's id
DELIVERIES = "deliveries"  # address_enc (not a WeCom robot's: its scope, in clear); the delivery's id
DUTY_ROSTER = "duty_roster"  # phone_enc (entered with a shift); the shift's id


def seal_recipient(fc: FieldCipher, column: str, account_id: str, value: str | None) -> str | None:
    return fc.seal(value, RECIPIENTS, column, account_id)


def open_recipient(fc: FieldCipher, column: str, account_id: str, stored: str | None) -> str | None:
    return fc.open(stored, RECIPIENTS, column, account_id, unbound=True)


def seal_contact(fc: FieldCipher, contact_id: Any, phone: str | None) -> str | None:
    return fc.seal(phone, CARE_CONTACTS, "phone_enc", contact_id)


def open_contact(fc: FieldCipher, contact_id: Any, stored: str | None) -> str | None:
    return fc.open(stored, CARE_CONTACTS, "phone_enc", contact_id, unbound=True)


def seal_shift_phone(fc: FieldCipher, shift_id: Any, phone: str | None) -> str | None:
    return fc.seal(phone, DUTY_ROSTER, "phone_enc", shift_id)


def open_shift_phone(fc: FieldCipher, shift_id: Any, stored: str | None) -> str | None:
    return fc.open(stored, DUTY_ROSTER, "phone_enc", shift_id, unbound=True)


def seal_address(fc: FieldCipher, delivery_id: Any, in_flight: str | None) -> str | None:
    """A delivery's address, from its in-flight form, bound to the delivery."""
    return fc.seal(fc.decrypt(in_flight), DELIVERIES, "address_enc", delivery_id) if in_flight else None


def open_address(fc: FieldCipher, delivery_id: Any, stored: str | None) -> str | None:
    return fc.open(stored, DELIVERIES, "address_enc", delivery_id, unbound=True)


def in_flight(fc: FieldCipher, clear: str | None) -> str | None:
    """An address on its way to a delivery row (no row of its own: no associated data)."""
    return fc.encrypt(clear)
