"""The child processes the local infrastructure, the benchmarks and the tests start: waiting until one answers
over HTTP, and stopping it."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_answering(
    proc: subprocess.Popen[Any],
    name: str,
    url: str,
    log: Callable[[], str],
    timeout: float = 60.0,
    *,
    answered: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
) -> None:
    """Until ``url`` answers 200 (or as ``answered`` says). If the process exits first: RuntimeError; after
    ``timeout`` seconds: TimeoutError; both with what ``log()`` gives (the end of its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{log()}")
        with contextlib.suppress(httpx.HTTPError):
            if answered(httpx.get(url, timeout=2)):
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready at {url} in {timeout}s:\n{log()}")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; nothing if it has exited already."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
