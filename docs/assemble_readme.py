"""Rebuild README.md's reference part from the section sources in docs/ (each owned by its area).

README.md = its hand-written head (everything before "## The services") + the five services' sections +
the table of every event on the bus (generated from the contracts and the services' handlers) + operations,
reliability and benchmarks. Headings of the sources are demoted one level; code blocks are left alone.
`python docs/assemble_readme.py` rewrites README.md; `--check` fails when it is out of date (tests run it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "\n## The services\n"
SERVICES_INTRO = ("Each service's API (every endpoint with its roles), events, configuration and worked examples. "
                  "Interactive docs: `/<service>/docs` on a running system.\n")
EVENTS_INTRO = ("Every integration event, its topic and key, who publishes and who consumes it. The JSON Schemas "
                "are in `minsheng/contracts/schemas/` (one per event, with an example) beside `asyncapi.json` for "
                "the whole bus.\n")


def demote(text: str) -> str:
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out).strip() + "\n"


def events_table() -> str:
    from minsheng import SERVICES
    from minsheng.contracts import REGISTRY
    from minsheng.runner import load_spec

    consumers: dict[str, list[str]] = {}
    for name in SERVICES:
        for model in load_spec(name).handlers:
            consumers.setdefault(model.event_type, []).append(name)
    rows = ["| event type | topic (key) | published by | consumed by |", "|---|---|---|---|"]
    for event_type, model in sorted(REGISTRY.items(), key=lambda kv: (kv[1].topic, kv[0])):
        rows.append(f"| `{event_type}` | `{model.topic}` (`{model.key_field}`) | {model.topic.split('.')[0]} | "
                    f"{', '.join(consumers.get(event_type, [])) or '—'} |")
    return "\n".join(rows) + "\n"


def assemble() -> str:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split(MARKER)[0].rstrip() + "\n"
    source = [demote((ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8"))
              for name in ("visits", "issues", "points", "canteen", "identity")]
    tail = [demote((ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8"))
            for name in ("operations", "reliability", "benchmarks")]
    return "\n".join([head, MARKER.strip() + "\n", SERVICES_INTRO, *source,
                      "## Events on the bus\n\n" + EVENTS_INTRO + "\n" + events_table(), *tail])


def main() -> int:
    text = assemble()
    readme = ROOT / "README.md"
    if "--check" in sys.argv:
        if readme.read_text(encoding="utf-8") != text:
            print("README.md is out of date: run `python docs/assemble_readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
