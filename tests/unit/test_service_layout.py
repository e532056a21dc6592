"""Every service's spec is read from its package's fixed layout (minsheng.platform.service_layout)."""

from __future__ import annotations

import importlib

import pytest

from minsheng import SERVICES
from minsheng.runner import load_spec


@pytest.mark.parametrize("service", SERVICES)
def test_the_spec_holds_the_parts_the_layout_names(service: str) -> None:
    spec = load_spec(service)
    package = f"services.{service}"
    models = importlib.import_module(f"{package}.models")
    assert spec.name == service
    assert spec.metadata is models.metadata
    assert spec.tables is models.platform_tables
    assert spec.router is importlib.import_module(f"{package}.views").router
    assert spec.handlers is importlib.import_module(f"{package}.handlers").HANDLERS
    assert (spec.migrations_dir / "env.py").is_file()
    assert spec.jobs, "every service has periodic jobs"


def test_a_demo_seed_where_the_service_has_a_demo_module() -> None:
    assert load_spec("canteen").seed_demo is importlib.import_module("services.canteen.demo").seed_demo
    assert load_spec("identity").seed_demo is None  # identity has no demo module
