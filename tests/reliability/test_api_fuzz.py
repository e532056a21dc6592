"""Schemathesis over every service's OpenAPI document (Open311 included: it is part of the issues API under
/issues/open311/v2), authenticated, in-process (ASGI) on the embedded mode with the demo data loaded:
0 server errors, 0 response-schema violations, and no unmasked phone or ID number in any response body.

Route-driven: the operations come from the running services' documents, so the run grows with them.
Bounded by default; ``MINSHENG_FUZZ_EXAMPLES`` (examples per operation, default 4) and ``MINSHENG_FUZZ_ROLES``
(comma-separated, default ``admin``) go deeper, e.g. ``MINSHENG_FUZZ_EXAMPLES=50
MINSHENG_FUZZ_ROLES=admin,staff,grid_worker,resident,rider,merchant``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import schemathesis
from hypothesis import Phase, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import formats as schemathesis_formats
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.reliability.test_hostile_input import BOGUS_CURSORS, EXTREME_DATES, EXTREME_TIMES
from tests.support.client import System
from tests.support.hangguard import note
from tests.support.pii import leaks
from tests.support.reliability import env_int, record, reproducible

EXAMPLES = env_int("MINSHENG_FUZZ_EXAMPLES", 4)
ROLES = [r.strip() for r in os.environ.get("MINSHENG_FUZZ_ROLES", "admin").split(",") if r.strip()]
BASE = "http://minsheng.test"
# pydantic documents ``datetime.time`` as ``format: time``, which JSON Schema takes from RFC 3339 (an offset is
# required); the services' naive wall-clock times ("07:00:00", a canteen's serving hours) are meant that way.
NAIVE_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


# Dates and times are drawn from the edges as well as from the middle (issue 13: years 1 and 9999, ±14:00
# offsets, a bare date where a time is expected, a naive time), and every list also gets the bogus cursors.
_DATETIMES = st.one_of(
    st.sampled_from(EXTREME_TIMES),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([timezone(timedelta(hours=h)) for h in (-14, -8, 0, 8, 14)]),
    ).map(lambda d: d.isoformat()),
)
_DATES = st.one_of(st.sampled_from(EXTREME_DATES), st.dates().map(lambda d: d.isoformat()))


@contextmanager
def widened_formats() -> Iterator[None]:
    saved = dict(schemathesis_formats.STRING_FORMATS)
    schemathesis.openapi.format("date-time", _DATETIMES)
    schemathesis.openapi.format("date", _DATES)
    try:
        yield
    finally:
        schemathesis_formats.STRING_FORMATS.clear()
        schemathesis_formats.STRING_FORMATS.update(saved)


@dataclass
class Findings:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    schema_violations: list[str] = field(default_factory=list)
    tolerated_naive_times: int = 0
    cursor_probes: int = 0
    pii_leaks: list[str] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    operations: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _failures(exc: BaseException) -> list[Failure]:
    if isinstance(exc, FailureGroup):
        return [f for e in exc.exceptions for f in _failures(e)]
    return [exc] if isinstance(exc, Failure) else []


def _tolerated(failure: Failure) -> bool:
    instance = getattr(failure, "instance", None)
    return (
        failure.title == "Response violates schema"
        and isinstance(instance, str)
        and NAIVE_TIME.fullmatch(instance) is not None
        and "time" in failure.message
    )


async def test_every_operation_of_every_service_survives_fuzzing(demo_system: System) -> None:
    s = demo_system
    loop = asyncio.get_running_loop()
    # As a real server answers: the response the app sent, not the exception Starlette re-raises after it.
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=s.app, raise_app_exceptions=False), base_url=BASE, timeout=60
    )
    findings = Findings()
    schemas = {}
    for service in s.app.state.runtimes:
        r = await s.client.get(f"/{service}/openapi.json")
        assert r.status_code == 200
        schemas[service] = schemathesis.openapi.from_dict(r.json())

    async def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
        built = http.build_request(method, url, **kwargs)
        with suppress(Exception):
            await built.aread()  # multipart bodies are streams: read them first, the checks look at the request
        return await http.send(built)

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        method, url = kwargs.pop("method"), kwargs.pop("url")
        for unsupported in ("verify", "allow_redirects", "timeout", "cookies", "stream"):
            kwargs.pop(unsupported, None)
        if kwargs.get("files"):  # generated multipart parts may be numbers, which httpx cannot stream
            kwargs["files"] = [
                (
                    name,
                    tuple(str(v) if isinstance(v, int | float) else v for v in part)
                    if isinstance(part, tuple)
                    else part,
                )
                for name, part in kwargs["files"]
            ]
        return asyncio.run_coroutine_threadsafe(request(method, url, **kwargs), loop).result(120)

    def checker(service: str, operation: Any, headers: dict[str, str], label: str) -> Any:
        @reproducible(EXAMPLES, phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url=f"{BASE}/{service}", headers=headers)
            request_text = " ".join(repr(kwargs.get(k)) for k in ("url", "json", "params", "data", "headers"))
            response = send(kwargs)
            findings.calls += 1
            findings.statuses[response.status_code] = findings.statuses.get(response.status_code, 0) + 1
            if "reveal" not in operation.path:  # revealing on purpose is the PIPL test's business
                findings.pii_leaks += [f"{label}: {k}={v}" for k, v in leaks(response.text, request_text)]
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            except BaseException as exc:  # a FailureGroup is a BaseExceptionGroup
                failures = _failures(exc)
                if not failures:
                    findings.other_failures.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
                for failure in failures:
                    text = f"{label} → {response.status_code}: {failure.title}: {failure.message}"[:600]
                    if response.status_code >= 500:
                        findings.server_errors.append(text)
                    elif _tolerated(failure):
                        findings.tolerated_naive_times += 1
                    else:
                        findings.schema_violations.append(text)

        return check

    def cursor_probes(service: str, operation: Any, headers: dict[str, str], label: str) -> None:
        if "cursor" not in {p.name for p in operation.query}:
            return
        path = {p.name: str(uuid.UUID(int=0)) for p in operation.path_parameters}
        for cursor in BOGUS_CURSORS:
            case = operation.Case(path_parameters=path, query={"cursor": cursor})
            response = send(case.as_transport_kwargs(base_url=f"{BASE}/{service}", headers=headers))
            findings.calls += 1
            findings.cursor_probes += 1
            findings.statuses[response.status_code] = findings.statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                findings.server_errors.append(f"{label} cursor={cursor[:20]}… → {response.status_code}")

    def fuzz(service: str, schema: Any, role: str) -> None:
        headers = s.auth(role, sub=f"fuzz-{role}", scopes=["*"] if role in ("admin", "staff") else [])
        for result in schema.get_all_operations():
            operation = result.ok()
            findings.operations += 1
            label = f"{role} {operation.method.upper()} /{service}{operation.path}"
            started = time.monotonic()
            note(f"{label} (operation {findings.operations})")
            checker(service, operation, headers, label)()
            if operation.method.upper() == "GET":
                cursor_probes(service, operation, headers, label)
            findings.seconds[label] = round(time.monotonic() - started, 2)

    def run_all() -> None:
        for role in ROLES:
            for service, schema in schemas.items():
                fuzz(service, schema, role)

    try:
        with widened_formats():
            await asyncio.to_thread(run_all)
    finally:
        await http.aclose()

    deep = EXAMPLES != 4 or ROLES != ["admin"]
    record(
        "api_fuzz_deep" if deep else "api_fuzz",
        {
            "services": sorted(schemas),
            "roles": ROLES,
            "examples_per_operation": EXAMPLES,
            "operations": findings.operations,
            "requests": findings.calls,
            "responses": dict(sorted(findings.statuses.items())),
            "server_errors": len(findings.server_errors),
            "response_schema_violations": len(findings.schema_violations),
            "unmasked_phone_or_id_in_responses": len(findings.pii_leaks),
            "tolerated_naive_time_format": findings.tolerated_naive_times,
            "bogus_cursor_probes": findings.cursor_probes,
            "extreme_dates_and_times": True,
            "harness_errors": len(findings.other_failures),
            "slowest_operations_seconds": dict(sorted(findings.seconds.items(), key=lambda kv: -kv[1])[:10]),
            "examples": {
                "server_errors": findings.server_errors[:10],
                "response_schema_violations": findings.schema_violations[:10],
                "pii_leaks": findings.pii_leaks[:10],
                "harness_errors": findings.other_failures[:5],
            },
        },
    )
    assert findings.calls > findings.operations, "every operation was called"
    assert findings.server_errors == [], "\n".join(findings.server_errors[:10])
    assert findings.schema_violations == [], "\n".join(findings.schema_violations[:10])
    assert findings.pii_leaks == [], "\n".join(findings.pii_leaks[:10])
