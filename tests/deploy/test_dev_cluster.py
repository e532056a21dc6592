"""`minsheng dev-cluster` (bin/cluster): the distributed mode on one machine without Docker, started, used through
its gateway, stopped with Ctrl-C, and started again on the data it kept."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from minsheng.localinfra.gateway import nginx_binary
from minsheng.localinfra.ports import free_port

pytestmark = [pytest.mark.integration]


def _start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minsheng.cli",
            "dev-cluster",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--broker",
            os.environ.get("MINSHENG_TEST_KAFKA", "kafka"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:  # a thread, not select(): a buffered reader may hold the "ready:" line already
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready:"):
                ready.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if ready.wait(timeout=420):  # a slow, shared machine: PostgreSQL, Kafka and seven processes start
        return proc, lines
    proc.send_signal(signal.SIGINT)  # it stops what it started
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    raise AssertionError("dev-cluster did not become ready:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> list[str]:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    time.sleep(0.2)  # the reader thread has the last lines
    assert proc.stdout is not None
    output = lines + proc.stdout.readlines()
    print("".join(output))  # pytest shows it when the test fails
    return output


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed: run deploy/ci/ensure-tools.sh")
def test_dev_cluster_runs_the_distributed_mode_behind_the_gateway_and_keeps_its_data() -> None:
    # Not pytest's tmp_path: PostgreSQL runs as the postgres user, who cannot enter root's 0700 pytest folders.
    tmp_path = Path(tempfile.mkdtemp(prefix="minsheng-dev-cluster-"))
    try:
        _run_twice(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_twice(tmp_path: Path) -> None:
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    proc, lines = _start(tmp_path, port)
    try:
        for service in ("visits", "issues", "points", "canteen"):
            assert httpx.get(f"{gateway}/{service}/readyz", timeout=10).status_code == 200, service
        menus = httpx.get(f"{gateway}/canteen/canteens", timeout=10)
        assert menus.status_code == 200 and menus.json()["items"], "demo data loaded"
    finally:
        output = _stop(proc, lines)
    assert proc.returncode == 0, "".join(output)
    assert any(line.startswith("stopped   postgres") for line in output), "".join(output)
    assert any(line.startswith("stopped   kafka") for line in output), "".join(output)

    proc, lines = _start(tmp_path, port)  # again, on the PostgreSQL and Kafka data of the first run
    try:
        canteens = httpx.get(f"{gateway}/canteen/canteens", timeout=10).json()["items"]
        assert len(canteens) == len(menus.json()["items"]), "the demo data is loaded once, not twice"
    finally:
        output = _stop(proc, lines)
    assert proc.returncode == 0, "".join(output)
