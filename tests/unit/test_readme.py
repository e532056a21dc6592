"""The README stays true: its reference part is assembled from docs/ and lists every event on the bus."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from minsheng.contracts import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def _assembler():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("assemble_readme", ROOT / "docs" / "assemble_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_assembled_from_its_sources() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == _assembler().assemble(), "README.md is stale: run `python docs/assemble_readme.py`"


def test_readme_names_every_event_and_both_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for event_type in REGISTRY:
        assert f"`{event_type}`" in readme
    assert "bin/run" in readme and "bin/test" in readme
