"""Ending background tasks at shutdown without ever waiting on them forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SHUTDOWN_TIMEOUT_SECONDS = 10.0


async def cancel_all(tasks: Iterable[asyncio.Task[object]], *, grace: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
    """Cancel ``tasks`` and wait at most ``grace`` seconds for them to end.

    A task that swallows its cancellation (or sits in a call that ignores it) is named in the log and left
    behind: a process that is shutting down must not hang on it, and whatever it had not finished is safe —
    the outbox resends unsent rows and the inbox drops redelivered events."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    ended, stuck = await asyncio.wait(pending, timeout=grace)
    for task in ended:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it again; it was logged where it happened
    for task in stuck:
        log.warning("task %s did not end within %.0f s of its cancellation; left behind", task.get_name(), grace)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or ``TimeoutError`` after ``seconds``.

    Use this, never ``asyncio.wait_for``: on Python 3.11 ``wait_for`` loses a cancellation that arrives while
    the awaited thing is completing (CPython gh-86296), so a loop waiting on an event with it can ignore the
    shutdown that cancels it and hang there. ``asyncio.timeout`` counts cancellations correctly."""
    async with asyncio.timeout(seconds):
        return await awaitable
