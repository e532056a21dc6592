"""What translating a problem costs: the language negotiation and the catalog look-ups a problem+json answer
makes beyond rendering it in English as before (target: ≤ 20 µs a problem), plus the one-time catalog load.

    python -m bench.i18n [--repeat 20000]

Prints one JSON document; times are the best of five runs' means, in microseconds of this process's CPU time.
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from typing import Any
from uuid import UUID

from starlette.requests import Request

ISSUE = UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
HEADER = "zh-CN,zh;q=0.9,en;q=0.8"  # what a phone in mainland China sends


def _request(accept_language: str) -> Request:
    headers = [(b"accept-language", accept_language.encode())]
    return Request(
        {"type": "http", "method": "GET", "path": "/issues/issues/x", "headers": headers, "query_string": b""}
    )


def _best(stmt: Any, repeat: int) -> float:
    # CPU time of this process: other processes on a shared machine do not count against the figure.
    return min(timeit.repeat(stmt, number=repeat, repeat=5, timer=time.process_time)) / repeat * 1e6


def run(repeat: int) -> dict[str, Any]:
    from minsheng.platform import i18n
    from minsheng.platform.errors import conflict, not_found, problem_response
    from minsheng.platform.i18n import _t, negotiate, translate, validation_message

    t0 = time.perf_counter()
    for locale in i18n.LOCALES:
        i18n.catalog(locale)
    load_ms = (time.perf_counter() - t0) * 1e3

    missing = not_found("issue", ISSUE)  # a Term and a UUID in the detail
    busy = conflict("task_not_open", _t("The task is {status}; it cannot be completed.", status="verified"))
    headers = {"accept-language": HEADER}

    def translate_problem(problem: Any = missing) -> None:
        locale = i18n.request_locale(headers)
        translate(problem.title, locale)
        translate(problem.detail, locale)

    errors: list[dict[str, Any]] = [
        {"type": "missing", "msg": "Field required", "ctx": None},
        {"type": "string_too_long", "msg": "String should have at most 200 characters", "ctx": {"max_length": 200}},
        {"type": "greater_than_equal", "msg": "Input should be greater than or equal to 1", "ctx": {"ge": 1}},
    ]

    def translate_validation() -> None:
        locale = i18n.request_locale(headers)
        for e in errors:
            validation_message(e, locale)
        translate(_t("Check: {fields}", fields="latitude, title"), locale)

    zh, en = _request(HEADER), _request("en")
    # The whole problem+json rendering, in Chinese and in English, for scale (JSON encoding included).
    render_zh = _best(lambda: problem_response(zh, 404, missing.code, missing.title, missing.detail), repeat)
    render_en = _best(lambda: problem_response(en, 404, missing.code, missing.title, missing.detail), repeat)
    return {
        "translate_not_found_us": round(_best(translate_problem, repeat), 2),
        "translate_conflict_us": round(_best(lambda: translate_problem(busy), repeat), 2),
        "translate_validation_3_errors_us": round(_best(translate_validation, repeat), 2),
        "negotiate_uncached_us": round(_best(lambda: negotiate.__wrapped__(HEADER), repeat), 2),
        "render_problem_zh_us": round(render_zh, 2),
        "render_problem_en_us": round(render_en, 2),
        "catalog_load_ms": round(load_ms, 1),
        "messages": len(i18n.catalog("zh_CN")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.i18n")
    parser.add_argument("--repeat", type=int, default=20000)
    args = parser.parse_args()
    print(json.dumps(run(args.repeat)))


if __name__ == "__main__":
    main()
