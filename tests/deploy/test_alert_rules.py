"""Alert rules issue 14 asked for: a stopped service is noticed (one ``absent()`` rule per service), the broker
has its own alert, and a broker that lost data is noticed by the consumers' offset checks. The rules are also
evaluated by Prometheus' own engine: ``promtool check rules`` and ``promtool test rules`` on
``deploy/prometheus/alerts.test.yml`` (series in, alerts out, at given times)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from minsheng import SERVICES
from tests.deploy.k8s import ROOT


def rules() -> dict[str, dict[str, Any]]:
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return {r["alert"]: r for group in alerts["groups"] for r in group["rules"]}


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_an_absent_rule(service: str) -> None:
    wanted = f'absent(minsheng_db_up{{service="{service}"}})'
    matching = [r for r in rules().values() if r["expr"].replace(" ", "") == wanted]
    assert len(matching) == 1, f"no absent() rule for {service}"
    rule = matching[0]
    assert rule["labels"]["severity"] == "critical" and rule["labels"]["service"] == service
    promql = pytest.importorskip("promql_parser", reason="promql-parser is a dev extra")
    promql.parse(rule["expr"])


def test_broker_and_data_loss_alerts_point_at_the_runbook() -> None:
    r = rules()
    assert r["MinshengBusDown"]["expr"] == "min(minsheng_bus_up) == 0"
    for name in ("MinshengConsumerOffsetReset", "MinshengConsumerOffsetBeyondLogEnd"):
        assert r[name]["annotations"]["runbook"] == "docs/operations.md#the-broker-lost-data"
        assert r[name]["labels"]["severity"] == "critical"
    assert "### The broker lost data" in (ROOT / "docs/operations.md").read_text()


PROMETHEUS = ROOT / "deploy/prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool (Debian's prometheus package). Installed by deploy/ci/ensure-tools.sh, which CI runs as root; the
    test installs it the same way when it can, and skips only when it is missing and cannot be installed."""
    found = shutil.which("promtool")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run([str(ROOT / "deploy/ci/ensure-tools.sh")], check=False, timeout=900)
        found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not installed and cannot be installed here (needs root and apt-get): run "
            "deploy/ci/ensure-tools.sh as root, or install Debian's prometheus package"
        )
    return found


def _run(*args: str) -> str:
    run = subprocess.run(args, cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def test_promtool_checks_the_rules(promtool: str) -> None:
    out = _run(promtool, "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_evaluates_the_alerts_on_series(promtool: str) -> None:
    """Bus down past its ``for``, offsets reset and beyond the log end, dead letters, a service reporting
    nothing (``absent()``) and one still reporting: each fires when it should and not before."""
    tested = {
        case["alertname"]
        for test in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert tested >= {
        "MinshengBusDown",
        "MinshengConsumerOffsetReset",
        "MinshengConsumerOffsetBeyondLogEnd",
        "MinshengDeadLetters",
        "MinshengServiceAbsentVisits",
    }
    assert "SUCCESS" in _run(promtool, "test", "rules", "alerts.test.yml")
