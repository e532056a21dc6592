"""A pytest plugin that turns a hung test into a failure with a report, never a run cut off from outside.

A test (with its fixtures) that runs past ``MINSHENG_TEST_HANG_SECONDS`` (default 420) gets every thread's stack
and the event loops' pending tasks printed, then those tasks cancelled so that it fails instead of hanging. If it
still has not ended ``MINSHENG_TEST_HANG_GRACE_SECONDS`` (default 90) later — a blocking call, not an await — the
run exits with status 70.

Loaded with ``-p`` (see pyproject.toml) so that it is imported before pytest captures output: it keeps its own
copy of the real stdout, and the report reaches the log even while the test's output is captured
and even when the run is then ended with ``os._exit``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import pytest

# An xdist worker's standard output is /dev/null (its real one carries the worker protocol); its stderr is the run's.
_REAL_FD = 2 if os.environ.get("PYTEST_XDIST_WORKER") else 1
_REAL_OUT: TextIO = open(os.dup(_REAL_FD), "w", buffering=1, closefd=True)  # noqa: SIM115 - lives as long as the run


def _say(text: str) -> None:
    print(text, file=_REAL_OUT, flush=True)


_last_note = ""


def note(text: str) -> None:
    """What a long test is doing right now (e.g. the operation a fuzz run is on), printed if it hangs."""
    global _last_note
    _last_note = text


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _report_and_cancel(nodeid: str, seconds: float) -> None:
    _say(f"[hang] {nodeid} still running after {seconds:.0f} s: stacks, then its tasks cancelled")
    if _last_note:
        _say(f"[hang] it was last at: {_last_note}")
    faulthandler.dump_traceback(file=_REAL_OUT, all_threads=True)
    for loop in _running_loops():
        for task in asyncio.all_tasks(loop):
            _say(f"[hang] pending {task!r}")
            task.print_stack(file=_REAL_OUT)
            loop.call_soon_threadsafe(task.cancel)


@pytest.fixture(autouse=True)
def _hang_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    seconds = float(os.environ.get("MINSHENG_TEST_HANG_SECONDS", "420"))
    grace = float(os.environ.get("MINSHENG_TEST_HANG_GRACE_SECONDS", "90"))
    done = threading.Event()
    nodeid = request.node.nodeid

    def guard() -> None:
        if done.wait(seconds):
            return
        _report_and_cancel(nodeid, seconds)
        if done.wait(grace):
            return
        _say(f"[hang] {nodeid} did not end {grace:.0f} s after its cancellation: ending the run (status 70)")
        faulthandler.dump_traceback(file=_REAL_OUT, all_threads=True)
        os._exit(70)

    started = time.monotonic()
    note("")
    threading.Thread(target=guard, name="hang-guard", daemon=True).start()
    yield
    done.set()
    if time.monotonic() - started > seconds:
        pytest.fail(f"ran past the hang limit of {seconds:.0f} s (see the [hang] report above)")
