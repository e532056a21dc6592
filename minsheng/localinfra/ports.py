"""Free ports and waiting for them."""

from __future__ import annotations

import contextlib
import socket
import time

_CLAIMED: set[int] = set()


def claim_port(port: int) -> None:
    """Keep ``free_port()`` from handing out a port this process will bind later (the dev cluster's gateway)."""
    _CLAIMED.add(port)


def free_port() -> int:
    """A port nothing listens on now, and never one this process was given or claimed before: the parts of a
    local system each ask for a port and bind it a little later, so two of them must not get the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _CLAIMED:
            _CLAIMED.add(port)
            return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")
