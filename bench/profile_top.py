"""The heaviest frames of a py-spy collapsed-stacks profile (`bin/bench --profile` writes `<figure>.collapsed.txt`).

    python -m bench.profile_top bench/results/profiles/read.issue_detail.collapsed.txt [--top 40]

Prints each function's inclusive share of the samples (the function or anything it called was running),
then the self shares (the function itself was on top): the flame graph's information as a sorted list, so
that two runs can be compared line by line.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """``fn (path/to/file.py:123)`` → ``fn (path/to/file.py)``: one row per function, not per line."""
    name, sep, where = frame.rpartition(" (")
    if not sep:
        return frame
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})"


def shares(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return total, inclusive, own


# Whose code a frame is, by its file: the first prefix that matches (py-spy prints paths relative to sys.path).
OWNERS = (
    ("minsheng", ("minsheng/", "services/")),
    ("database driver (asyncpg)", ("asyncpg/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("web framework (FastAPI, Starlette)", ("fastapi/", "starlette/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools/")),
    ("logging", ("logging/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
)


def owner(frame: str) -> str:
    where = frame.rpartition(" (")[2]
    for name, prefixes in OWNERS:
        if where.startswith(prefixes):
            return name
    return "event loop, stdlib and other"


def by_owner(lines: list[str]) -> dict[str, float]:
    """Each owner's share (0–1) of the samples' own time, largest first."""
    total, _, own = shares(lines)
    counts: Counter[str] = Counter()
    for name, n in own.items():
        counts[owner(name)] += n
    return {name: n / max(total, 1) for name, n in counts.most_common()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    lines = args.profile.read_text().splitlines()
    total, inclusive, own = shares(lines)
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"--- {title}")
        for name, n in counter.most_common(args.top):
            print(f"{100 * n / max(total, 1):5.1f} %  {name}")
    print("--- self, by whose code it is")
    for name, share in by_owner(lines).items():
        print(f"{100 * share:5.1f} %  {name}")


if __name__ == "__main__":
    main()
