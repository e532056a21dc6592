"""Route declarations say only what FastAPI cannot already tell (docs/platform.md → views.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "api_route"}


def _route_decorators(tree: ast.Module) -> list[tuple[ast.AsyncFunctionDef | ast.FunctionDef, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr in ROUTE_METHODS
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id == "router"
                ):
                    found.append((node, decorator))
    return found


VIEW_MODULES = sorted(
    path
    for path in (ROOT / "services").rglob("*.py")
    if "migrations" not in path.parts and "@router." in path.read_text(encoding="utf-8")
)


def test_the_view_modules_are_found() -> None:
    assert len(VIEW_MODULES) > 30


@pytest.mark.parametrize("path", VIEW_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_route_repeats_its_return_annotation_or_its_routers_tags(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    routes = _route_decorators(tree)
    repeated = [
        function.name
        for function, decorator in routes
        for keyword in decorator.keywords
        if keyword.arg == "response_model"
        and function.returns is not None
        and ast.unparse(keyword.value) == ast.unparse(function.returns)
    ]
    assert not repeated, f"response_model= repeats the return annotation in {repeated}"
    tags = {ast.unparse(k.value) for _, d in routes for k in d.keywords if k.arg == "tags"}
    untagged = [f.name for f, d in routes if not any(k.arg == "tags" for k in d.keywords)]
    if len(routes) > 1 and len(tags) == 1 and not untagged:
        pytest.fail(f"every route here has tags={tags.pop()}: say it once on the APIRouter")
