"""Alert rules issue 14 asked for: a stopped service is noticed (one ``absent()`` rule per service), the broker
has its own alert, and a broker that lost data is noticed by the consumers' offset checks."""

from __future__ import annotations

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
