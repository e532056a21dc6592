"""``python -m bench`` (or ``bin/bench``): run every figure beside its baseline, write bench/results/.

bin/bench                      quick sizes (~8 minutes)
bin/bench --full               1 M issues, 100 k households, 3 alternating rounds of 15 s (~40 minutes)
bin/bench --profile            also a py-spy flame graph per figure, in bench/results/profiles/
bin/bench --only reads,writes  some groups: reads, writes, e2e, relay, large, rss, identity, notify, i18n, photos
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import report
from bench.env import BenchEnv
from bench.suite import SIZES, Suite

GROUPS = ("reads", "writes", "e2e", "relay", "large", "rss", "identity", "notify", "i18n", "photos")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="sizes", action="store_const", const="quick", help="(default)")
    size.add_argument("--full", dest="sizes", action="store_const", const="full")
    size.add_argument("--smoke", dest="sizes", action="store_const", const="smoke", help="tiny, for the test")
    parser.add_argument("--only", help=f"comma-separated groups of {', '.join(GROUPS)}")
    parser.add_argument("--rounds", type=int, help="alternating baseline/subject rounds per figure")
    parser.add_argument("--duration", type=float, help="seconds measured per round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and load specs")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy each figure's subject (and a read's or write's baseline) for one extra round: flame graph "
        "(SVG) and collapsed stacks in <out>/profiles/, each owner's share of the CPU in the report",
    )
    args = parser.parse_args(argv)
    sizes = SIZES[args.sizes or "quick"]
    if args.rounds:
        sizes.rounds = args.rounds
    if args.duration:
        sizes.duration = args.duration
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(GROUPS):
        parser.error(f"unknown group(s): {', '.join(sorted(only - set(GROUPS)))}")
    m = report.machine()
    print(f"bench: {m['cpu']}, {m['cores']} cores, load average {m['load_average']}", flush=True)
    t0 = time.time()
    with BenchEnv() as env:
        suite = Suite(env, sizes, only, log=lambda line: print(line, flush=True))
        if args.profile:
            suite.profile_dir = args.out / "profiles"
        result = suite.run()
        workdir = env.workdir
        env.keep_logs = args.keep_logs or any(f["status"] == "failed" for f in result["figures"])
    result["machine"] = m
    result["machine"]["load_average_end"] = list(__import__("os").getloadavg())
    result["command"] = "bin/bench " + " ".join(argv if argv is not None else sys.argv[1:])
    result["elapsed_s"] = round(time.time() - t0)
    for path in report.write(result, args.out):
        print(f"wrote {path}")
    failed = [f["id"] for f in result["figures"] if f["status"] == "failed"]
    if failed:
        print(f"bench: {len(failed)} figure(s) failed: {', '.join(failed)}")
    if failed or args.keep_logs:
        print(f"bench: server logs and load specs in {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
