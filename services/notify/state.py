"""Per-process state of a running notify service that jobs and handlers reach through the database they were
given: the sender, while the service runs and this process sends."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from minsheng.platform.db import Database

if TYPE_CHECKING:
    from services.notify.sender import Notifier

NOTIFIERS: weakref.WeakKeyDictionary[Database, Notifier] = weakref.WeakKeyDictionary()
