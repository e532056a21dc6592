"""The schema-at-head check a server makes on start without Alembic agrees with Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from minsheng import SERVICES
from minsheng.platform.migrations import alembic_config
from minsheng.platform.schema_head import script_head
from minsheng.runner import load_spec


@pytest.mark.parametrize("service", SERVICES)
def test_the_head_read_without_alembic_is_alembics(service: str) -> None:
    spec = load_spec(service)
    heads = ScriptDirectory.from_config(alembic_config(service, spec.migrations_dir)).get_heads()
    assert [script_head(spec.migrations_dir)] == heads


def _version(directory: Path, revision: str, down: str) -> None:
    text = f'"""x"""\n\nrevision: str = {revision}\ndown_revision: str | None = {down}\n'
    (directory / f"{revision.strip(chr(39))}_x.py").write_text(text)


def test_two_heads_or_an_unreadable_revision_mean_let_alembic_decide(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    _version(versions, "'a'", "None")
    _version(versions, "'b'", "'a'")
    assert script_head(tmp_path) == "b"
    _version(versions, "'c'", "'a'")  # a branch: two heads
    assert script_head(tmp_path) is None
    (versions / "c_x.py").unlink()
    _version(versions, "make()", "'b'")  # not a plain string
    assert script_head(tmp_path) is None
