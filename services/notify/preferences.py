"""A person's preferences (``/notify/preferences``): the channels and rules they opted out of. Each function
takes a unit of work and never commits."""

from __future__ import annotations

from minsheng.platform.ids import utcnow
from minsheng.platform.uow import UnitOfWork
from services.notify.models import Preference, PreferencePublic


async def preferences_of(uow: UnitOfWork, account_id: str) -> PreferencePublic:
    prefs = await uow.session.get(Preference, account_id)
    return PreferencePublic(channels_off=prefs.channels_off, rules_off=prefs.rules_off) if prefs else PreferencePublic()


async def set_preferences(
    uow: UnitOfWork, account_id: str, channels_off: list[str], rules_off: list[str]
) -> PreferencePublic:
    prefs = await uow.session.get(Preference, account_id)
    if prefs is None:
        prefs = Preference(account_id=account_id)
        uow.session.add(prefs)
    prefs.channels_off, prefs.rules_off, prefs.updated_at = list(channels_off), list(rules_off), utcnow()
    return PreferencePublic(channels_off=list(channels_off), rules_off=list(rules_off))
