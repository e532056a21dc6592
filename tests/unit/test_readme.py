"""The README stays short and true; the docs site's generated references match the code and it builds strictly."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short_and_names_both_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15 * 1024, "the README is the front page; the reference lives in docs/"
    assert "bin/run" in readme and "bin/test" in readme


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), target


@pytest.mark.parametrize("page", ["events.md", "configuration.md", "cli.md"])
def test_generated_references_match_the_code(page: str) -> None:
    generator = _generator()
    assert (ROOT / "docs" / "reference" / page).read_text(encoding="utf-8") == generator.PAGES[page](), (
        f"docs/reference/{page} is stale: run `python docs/generate.py`"
    )


def test_every_event_and_setting_is_in_the_references() -> None:
    from minsheng.contracts import REGISTRY
    from minsheng.settings import Settings

    events = (ROOT / "docs" / "reference" / "events.md").read_text(encoding="utf-8")
    config = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
    assert all(f"`{event_type}`" in events for event_type in REGISTRY)
    assert all(f"`MINSHENG_{name.upper()}`" in config for name in Settings.model_fields)


@pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None, reason="mkdocs is a dev dependency"
)
def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
