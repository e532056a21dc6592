"""The documented first Kubernetes deployment (docs/operations.md → first deployment), run step by step against
a stand-in ``kubectl`` (tests/deploy/fake_kubectl.py) that refuses any step needing an object no earlier step
created. Issue 14: infra created no ``minsheng`` namespace (the Secrets step failed), and the jobs overlay had no
namespace, ConfigMap or ServiceAccount (the jobs, the first thing applied, could not start)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.k8s import ROOT

MARKER = "<!-- k8s-first-deployment -->"


def documented_steps() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    assert MARKER in text, "docs/operations.md lost the marked first-deployment block"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER) :], flags=re.S)
    assert block is not None
    return block.group(1)


def run_with_stand_in(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "kubectl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.deploy.fake_kubectl "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "FAKE_KUBECTL_STATE": str(tmp_path / "cluster.json"),
        "BACKUP_S3_ACCESS_KEY_ID": "test-key",
        "BACKUP_S3_SECRET_ACCESS_KEY": "test-secret",
        "PHOTOS_S3_ACCESS_KEY_ID": "test-photos-key",
        "PHOTOS_S3_SECRET_ACCESS_KEY": "test-photos-secret",
    }
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_each_documented_step_needs_only_what_earlier_steps_created(tmp_path: Path) -> None:
    if not any((Path(p) / "openssl").exists() for p in os.environ["PATH"].split(":")):
        pytest.skip("openssl is not installed")
    steps = documented_steps()
    assert "kubectl apply -k deploy/k8s/overlays/production/jobs" in steps
    result = run_with_stand_in(steps, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "successfully rolled out" in result.stdout


def test_the_stand_in_refuses_what_the_old_procedure_did(tmp_path: Path) -> None:
    # Secrets into a namespace nobody created yet.
    refused = run_with_stand_in("kubectl -n minsheng create secret generic minsheng-app --from-literal=a=b", tmp_path)
    assert refused.returncode == 1 and "namespace minsheng does not exist" in refused.stderr
    # The services' pods need the Secrets, which are not in the cluster yet.
    refused = run_with_stand_in("kubectl apply -k deploy/k8s/overlays/production", tmp_path)
    assert refused.returncode == 1 and "needs Secret minsheng/minsheng-app" in refused.stderr
    # A Job naming a ConfigMap and a ServiceAccount that nothing creates.
    job = tmp_path / "job.yaml"
    job.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, namespace: default}\nspec:\n  template:\n"
        "    spec:\n      serviceAccountName: minsheng\n      containers:\n      - name: c\n"
        "        image: x\n        envFrom: [{configMapRef: {name: minsheng-config}}]\n"
    )
    refused = run_with_stand_in(f"kubectl apply -f {job}", tmp_path)
    assert refused.returncode == 1
    assert "needs ConfigMap default/minsheng-config" in refused.stderr
    assert "needs ServiceAccount default/minsheng" in refused.stderr
