"""Per-process state of a running notify service that handlers and views reach through the database they
were given: the field cipher (and, while the service runs, its sender)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from minsheng.platform.db import Database
from minsheng.platform.privacy import FieldCipher, field_cipher
from minsheng.settings import Settings

if TYPE_CHECKING:
    from services.notify.sender import Notifier

_CIPHERS: weakref.WeakKeyDictionary[Database, FieldCipher] = weakref.WeakKeyDictionary()
NOTIFIERS: weakref.WeakKeyDictionary[Database, Notifier] = weakref.WeakKeyDictionary()


def cipher_of(settings: Settings) -> FieldCipher:
    return field_cipher(settings)


def register(db: Database, settings: Settings) -> None:
    _CIPHERS[db] = cipher_of(settings)


def cipher_for(db: Database) -> FieldCipher:
    """The running service's cipher; outside it (a CLI replaying dead letters) the one from the environment."""
    found = _CIPHERS.get(db)
    return found if found is not None else cipher_of(Settings())
