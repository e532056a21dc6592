"""The message catalogs' upkeep: extraction (a Babel extraction method, see ``babel.cfg``), ``update`` and the CI
``check``.

    python -m minsheng.platform.catalogs update   # re-extract messages.pot, merge it into every language's .po
    python -m minsheng.platform.catalogs check    # fail on a stale catalog, a missing translation, a placeholder
                                                  # mismatch or an f-string where a message belongs

Both take ``--root`` (default: this checkout) so a test can run them on a copy.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from minsheng.platform.i18n import DOMAIN, LOCALES, SOURCE_LOCALE, placeholders

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("minsheng", "services")
TRANSLATED = tuple(locale for locale in LOCALES if locale != SOURCE_LOCALE)  # must be complete

# Calls whose arguments at these (0-based) positions are messages: ``Problem(status, code, title, detail)``,
# ``conflict(code, detail)``, ``_t(template)``, ``N_(msgid)``; ``not_found(what, id)`` names a thing (a noun).
# Services' own helpers that hand a literal on to ``Problem`` are listed too, so their call sites stay plain.
MESSAGE_ARGS: dict[str, tuple[int, ...]] = {
    "Problem": (2, 3),
    "problem_response": (3, 4),  # (request, status, code, title, detail): the platform's own answers
    "conflict": (1,),
    "wrong_status": (1,),  # wrong_status(code, detail, current_status=…, allowed_from=…)
    "too_many": (1, 2),  # too_many(code, title, detail, wait=…): a 429 with Retry-After
    "invalid": (1, 2),  # errors.invalid(code, title, detail, field=…, message=…)
    "commit_or_conflict": (1,),  # platform.routes: commit_or_conflict(uow, detail, metadata)
    "UniqueRule": (3,),  # errors.UniqueRule(model, columns, code, detail)
    "problem": (0,),  # a UniqueRule's rule.problem(detail)
    "_t": (0,),
    "N_": (0,),
    "not_found": (0,),
    "visible_or_404": (2,),  # platform.access: visible_or_404(found, sees, what, id) — the thing's name
    "ensure_visible": (1,),  # ensure_visible(sees, what, id)
    "ensure_changeable": (2,),  # ensure_changeable(sees, changes, what, id)
    "outside_scope": (0,),  # outside_scope(detail)
    "forbidden": (0,),  # forbidden(detail)
    "read_only": (0,),  # read_only(what) — the thing's name
    "invalid_field": (2,),  # errors.invalid_field(code, field, detail)
    "_invalid_transition": (0,),  # issues.workflow: _invalid_transition(detail, issue, allowed_from)
    "_unauthorized": (1,),  # points.merchant_auth: _unauthorized(code, detail)
    "not_allowed": (0,),  # issues: not_allowed(detail)
}


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def message_nodes(tree: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := _call_name(node)) in MESSAGE_ARGS:
            for index in MESSAGE_ARGS[name]:
                if index < len(node.args):
                    yield name, node.args[index]


def literals(arg: ast.expr) -> Iterator[ast.Constant]:
    """The string literals an argument may be: itself, or either branch of ``a if cond else b``."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
        yield arg
    elif isinstance(arg, ast.IfExp):
        yield from literals(arg.body)
        yield from literals(arg.orelse)


def extract(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[tuple[int, None, str, list[str]]]:
    """The Babel extraction method ``babel.cfg`` names: the literals at the message positions above (the
    ``python`` method cannot take two messages from one call)."""
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for _, arg in message_nodes(ast.parse(source)):
        for literal in literals(arg):
            yield literal.lineno, None, str(literal.value), []  # None: no keyword spec to apply


def _pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])


def _locale_dir(root: Path) -> Path:
    return root / "minsheng" / "locale"


def _po(root: Path, locale: str) -> Path:
    return _locale_dir(root) / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract_to(root: Path, pot: Path) -> None:
    _pybabel(
        "extract",
        "-F",
        str(root / "babel.cfg"),
        "--no-location",  # line numbers would make every edit elsewhere in a file a catalog change
        "--sort-output",
        "--omit-header",
        "-o",
        str(pot),
        *(str(root / s) for s in SOURCES),
    )


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {m.id for m in catalog if isinstance(m.id, str) and m.id}


def update(root: Path = REPO) -> None:
    pot = _locale_dir(root) / f"{DOMAIN}.pot"
    extract_to(root, pot)
    for locale in LOCALES:
        po = _po(root, locale)
        if po.exists():
            _pybabel("update", "-i", str(pot), "-o", str(po), "-l", locale, "--ignore-obsolete")
        else:
            po.parent.mkdir(parents=True, exist_ok=True)
            _pybabel("init", "-i", str(pot), "-o", str(po), "-l", locale)


def f_strings(root: Path = REPO) -> list[str]:
    """Messages written as f-strings: they cannot be extracted (use ``_t("… {name}", name=…)``)."""
    found = []
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.py")):
            for name, arg in message_nodes(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(arg, ast.JoinedStr):
                    found.append(f"{path.relative_to(root)}:{arg.lineno}: an f-string as {name}(…)'s message")
    return found


def check(root: Path = REPO) -> list[str]:
    """Every reason the catalogs are not ready to ship (empty: all good)."""
    problems = f_strings(root)
    pot = _locale_dir(root) / f"{DOMAIN}.pot"
    with tempfile.TemporaryDirectory() as tmp:
        fresh_pot = Path(tmp) / "fresh.pot"
        extract_to(root, fresh_pot)
        fresh = _ids(_read(fresh_pot))
    committed = _ids(_read(pot)) if pot.exists() else set()
    fix = "run `python -m minsheng.platform.catalogs update`"
    for msgid in sorted(fresh - committed):
        problems.append(f"messages.pot is stale: {msgid!r} is new in the code ({fix})")
    for msgid in sorted(committed - fresh):
        problems.append(f"messages.pot is stale: {msgid!r} is no longer in the code ({fix})")
    for locale in LOCALES:
        po_path = _po(root, locale)
        if not po_path.exists():
            problems.append(f"{locale}: no catalog at {po_path.relative_to(root)} ({fix})")
            continue
        catalog = _read(po_path, locale)
        if _ids(catalog) != fresh:
            problems.append(f"{locale}: the catalog is not in step with the code ({fix})")
        for message in catalog:
            if not isinstance(message.id, str) or not message.id:
                continue
            text = message.string if isinstance(message.string, str) else ""
            if locale in TRANSLATED and (not text or message.fuzzy):
                state = "fuzzy" if message.fuzzy and text else "untranslated"
                problems.append(f"{locale}: {message.id!r} is {state}")
            if text and placeholders(text) != placeholders(message.id):
                problems.append(
                    f"{locale}: {message.id!r} → {text!r}: placeholders {sorted(placeholders(text))} "
                    f"differ from {sorted(placeholders(message.id))}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minsheng.platform.catalogs", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("check", "update"))
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    if args.command == "update":
        update(args.root)
        return 0
    problems = check(args.root)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} catalog problem(s); see docs/i18n.md", file=sys.stderr)
        return 1
    print("catalogs complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
