"""Open311 GeoReport v2 under /issues/open311/v2, fuzzed with a real API key: POST Service Request takes a
form the OpenAPI document cannot describe (the spec's form fields, ``attribute[...]``), so schemathesis alone
only ever sees 403 there. Hypothesis generates the forms here: 0 server errors, every answer in the Open311
shape (a list of requests or a list of errors, JSON or XML), and the reporter's phone never comes back in
clear from the public GET endpoints. ``MINSHENG_OPEN311_EXAMPLES`` (default 60) goes deeper."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from xml.etree import ElementTree as ET

import httpx
from hypothesis import Phase, given
from hypothesis import strategies as st

from tests.support.client import System
from tests.support.pii import leaks
from tests.support.reliability import env_int, record, reproducible

EXAMPLES = env_int("MINSHENG_OPEN311_EXAMPLES", 60)
BASE = "/issues/open311/v2"

texts = st.text(st.characters(codec="utf-8"), max_size=60)
phones = st.from_regex(r"\A1[3-9][0-9]{9}\Z")


def forms(codes: list[str], key: str) -> st.SearchStrategy[dict[str, str]]:
    """Mostly well-formed service requests (so many are accepted), with odd values mixed in."""
    odd = st.one_of(texts, st.floats(allow_nan=True, allow_infinity=True).map(str), st.integers().map(str))
    location = st.one_of(
        st.fixed_dictionaries({"lat": st.floats(39.9, 40.1).map(str), "long": st.floats(112.6, 112.8).map(str)}),
        st.fixed_dictionaries({"address_string": st.text(min_size=1, max_size=40)}),
        st.fixed_dictionaries({}, optional={"lat": odd, "long": odd, "address_id": texts}),
    )
    base = st.fixed_dictionaries(
        {
            "api_key": st.sampled_from([key, key, key, "wrong", ""]),
            "service_code": st.one_of(st.sampled_from(codes), st.sampled_from(codes), texts),
        },
        optional={
            "description": texts,
            "first_name": texts,
            "last_name": texts,
            "phone": st.one_of(phones, phones, texts),
            "email": texts,
            "media_url": st.one_of(st.just("https://cdn.example/p/1.jpg"), texts),
            "account_id": texts,
            "device_id": texts,
            "jurisdiction_id": texts,
            "community": texts,
            "attribute[floor]": texts,
            "attribute[urgent]": texts,
        },
    )
    return st.tuples(base, location).map(lambda parts: {**parts[0], **parts[1]})


def open311_shape(fmt: str, response: httpx.Response) -> bool:
    """A JSON list of objects, or XML with a root element: what every GeoReport v2 answer looks like."""
    if fmt == "json":
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, list) and all(isinstance(i, dict) for i in body)
    try:
        ET.fromstring(response.content)
    except ET.ParseError:
        return False
    return True


async def test_open311_survives_generated_service_requests(demo_system: System) -> None:
    s = demo_system
    loop = asyncio.get_running_loop()
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=s.app, raise_app_exceptions=False),
        base_url="http://minsheng.test",
        timeout=60,
    )
    admin = s.auth("admin", sub="open311-admin")
    r = await s.client.post("/issues/open311-keys", headers=admin, json={"name": "fuzzer"})
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    codes = [c["service_code"] for c in (await s.client.get(f"{BASE}/services.json")).json()]
    assert codes
    statuses: dict[int, int] = {}
    problems: list[str] = []
    created: list[str] = []
    phones_sent: list[str] = []

    def call(method: str, url: str, **kw: Any) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(http.request(method, url, **kw), loop).result(60)

    @reproducible(EXAMPLES, phases=[Phase.explicit, Phase.generate])
    @given(form=forms(codes, key), fmt=st.sampled_from(["json", "xml"]))
    def post(form: dict[str, str], fmt: str) -> None:
        response = call("POST", f"{BASE}/requests.{fmt}", data=form)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            problems.append(f"POST requests.{fmt} {form!r} → {response.status_code}: {response.text[:200]}")
        elif not open311_shape(fmt, response):
            problems.append(
                f"POST requests.{fmt} → {response.status_code} not in the Open311 shape: {response.text[:200]}"
            )
        elif fmt == "json" and response.status_code in (200, 201):
            created.extend(i["service_request_id"] for i in response.json() if "service_request_id" in i)
            if form.get("phone"):
                phones_sent.append(form["phone"])

    await asyncio.to_thread(post)

    # What the public reads give back about those requests: never a phone in clear.
    reads = [await http.get(f"{BASE}/requests.json"), await http.get(f"{BASE}/requests.xml")]
    reads += [await http.get(f"{BASE}/requests/{rid}.json") for rid in created[:20]]
    await http.aclose()
    read_errors = [f"GET {r.url.path} → {r.status_code}" for r in reads if r.status_code >= 500]
    seen = sum(1 for r in reads[2:] if r.status_code == 200)
    leaked = [f"{r.url.path}: {k}={v}" for r in reads for k, v in leaks(r.text)]
    leaked += [f"{r.url.path}: sent phone {p}" for r in reads for p in phones_sent if p in r.text]
    record(
        "open311_fuzz",
        {
            "generated_requests": EXAMPLES,
            "responses": dict(sorted(statuses.items())),
            "created": len(created),
            "with_phone": len(phones_sent),
            "server_errors": sum(n for c, n in statuses.items() if c >= 500) + len(read_errors),
            "not_open311_shape": len(problems) - sum(1 for p in problems if "→ 5" in p),
            "created_requests_read_back": seen,
            "phones_in_public_reads": len(leaked),
            "examples": (problems + leaked)[:10],
        },
    )
    assert created, "some generated requests were accepted"
    assert seen == len(reads) - 2, "each created request can be read back (so the phone check saw it)"
    assert problems == [], "\n".join(problems[:10])
    assert read_errors == [] and leaked == [], json.dumps(read_errors + leaked, ensure_ascii=False)
