"""The probes of issue 13, replayed against the embedded system with the demo data: dates and times at the
edges (a bare date, years 1 and 9999, ±14:00), bogus cursors (deeply nested arrays, ``[[],{}]``), formula cells
in exports, lost unique-constraint races, the hash of a closed settlement, NUL bytes, photo URLs.

Every answer must be a 2xx or a 4xx problem+json: never a 5xx, never a 200 that stops mid-stream."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
from typing import Any

import httpx

from minsheng.platform.ids import utcnow
from services.points.client import MerchantAuth
from services.points.demo import DEMO_KEY_ID, DEMO_SECRET
from tests.support.client import System
from tests.support.reliability import record

EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59Z",
    "2026-11-01",
    "2026-11-01T08:00:00",
    "1969-12-31T23:59:59+14:00",
]
EXTREME_DATES = ["0001-01-01", "9999-12-31", "2026-02-30", "1900-01-01", "2199-12-31"]
EXTREME_MONTHS = ["0001-01", "9999-12", "0000-01", "2026-13", "2026-1", "2026-11"]


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BOGUS_CURSORS = [
    _b64("[" * 5000 + "]" * 5000),
    _b64("[" * 200 + "]" * 200),
    "W1tdLHt9XQ",
    _b64('[{"a":1},[]]'),
    _b64('["0001-01-01T00:00:00+14:00","0190f4f4-0000-7000-8000-000000000000"]'),
    _b64('["2026-11-01T00:00:00","0190f4f4-0000-7000-8000-000000000000"]'),
    _b64("[1e999, null]"),
    _b64('[true, "x"]'),
    _b64('"x"'),
    "%%%",
    "A" * 5000,
    _b64('["\\u0000"]'),
    _b64('[99999999999999999999999999, "0190f4f4-0000-7000-8000-000000000000"]'),
    _b64('["not-a-date", 1]'),
    _b64('["not-a-date", "0190f4f4-0000-7000-8000-000000000000"]'),
    _b64('["0001-01-01", 1]'),
]


def _is_problem(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").startswith("application/problem+json") or (
        "open311" in str(r.url) and r.status_code < 500
    )


async def test_hostile_dates_cursors_and_bodies_answer_4xx_never_5xx(demo_system: System) -> None:
    s = demo_system
    admin = s.auth("admin", sub="probe-admin")
    rider = s.auth("rider", sub="rider-fanweiming")
    results: dict[str, int] = {}
    bad: list[str] = []

    async def probe(method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        r = await s.client.request(method, url, headers=headers if headers is not None else admin, **kw)
        key = f"{method} {url.split('?')[0]}"
        results[key] = results.get(key, 0) + 1
        if r.status_code >= 500 or (r.status_code >= 400 and not _is_problem(r)):
            bad.append(f"{method} {url} {kw.get('json', '')} → {r.status_code} {r.text[:200]}")
        return r

    household = (await s.client.get("/visits/households?limit=1", headers=admin)).json()["items"][0]["id"]
    merchant = (await s.client.get("/points/merchants?limit=1", headers=admin)).json()["items"][0]["id"]
    canteen = (await s.client.get("/canteen/canteens?limit=1", headers=admin)).json()["items"][0]["id"]

    time_urls = [
        "/visits/visits?since={v}",
        "/visits/visits?until={v}",
        "/issues/issues?created_from={v}",
        "/issues/issues?created_to={v}",
        "/points/riders/me/statement?since={v}",
        "/points/riders/me/statement?until={v}",
        "/notify/deliveries?since={v}",
    ]
    date_urls = [
        "/issues/figures?from={v}",
        "/issues/figures?to={v}",
        "/issues/figures.csv?from={v}",
        "/issues/issues/export.csv?from={v}",
        "/issues/issues/export.csv?to={v}",
        "/visits/coverage?since={v}",
        "/visits/coverage?until={v}",
        f"/visits/households/{household}/bill?since={{v}}",
        f"/visits/households/{household}/bill?until={{v}}",
        f"/canteen/canteens/{canteen}/menus?date_from={{v}}",
        f"/canteen/canteens/{canteen}/menus?date_to={{v}}",
        "/issues/open311/v2/requests.json?start_date={v}",
        "/issues/open311/v2/requests.json?end_date={v}",
    ]
    month_urls = [
        "/points/leaderboards/team?month={v}",
        f"/points/merchants/{merchant}/statements/{{v}}",
        f"/canteen/canteens/{canteen}/settlements/{{v}}",
    ]
    for v in EXTREME_TIMES + EXTREME_DATES:
        for template in time_urls + date_urls:
            headers = rider if "/riders/me/" in template else admin
            if "open311" in template and "T" not in v:
                v = f"{v}T00:00:00Z"
            await probe("GET", template.format(v=v.replace("+", "%2B")), headers)
    for v in EXTREME_MONTHS:
        for template in month_urls:
            await probe("GET", template.format(v=v))
    # The merchant API signs its requests (the month is checked once the signature is).
    merchant_api = MerchantAuth(DEMO_KEY_ID, DEMO_SECRET)
    for v in EXTREME_MONTHS:
        for fmt in ("json", "csv"):
            r = await probe("GET", f"/points/merchant-api/statements/{v}?format={fmt}", {}, auth=merchant_api)
            assert r.status_code != 401, r.text[:300]  # signed: the month is what is probed
    anonymous: dict[str, str] = {}
    for template in [
        "/issues/figures?from={v}",
        "/issues/open311/v2/requests.json?start_date={v}T00:00:00Z",
        f"/canteen/canteens/{canteen}/menus?date_from={{v}}",
        f"/canteen/canteens/{canteen}/menus?date_to={{v}}",
    ]:
        for v in ("0001-01-01", "9999-12-31"):
            r = await probe("GET", template.format(v=v), anonymous)
            assert r.status_code != 401, (template, r.text[:300])  # public: the date is what is probed

    # Bodies with times at the edges.
    for v in EXTREME_TIMES:
        await probe(
            "POST",
            "/issues/votes",
            json={"community": "yunxing", "question": "Q?", "options": ["a", "b"], "closes_at": v},
        )
        await probe("POST", "/points/tasks", json={"type_code": "patrol", "title": "t", "due_at": v})

    # Bogus cursors on every list that takes one.
    lists = [
        "/issues/issues",
        "/issues/votes",
        "/points/riders",
        "/points/hazard-reports",
        "/points/offers",
        "/canteen/diners",
        "/canteen/orders",
        "/visits/visits",
        "/visits/residents",
        "/points/tasks",
        "/visits/rounds",
        "/visits/due",
        "/canteen/canteens/yunxing-street/menus",
    ]
    for url in lists:
        for cursor in BOGUS_CURSORS:
            r = await probe("GET", f"{url}?cursor={cursor}")
            if r.status_code == 422 and r.json().get("code") not in ("invalid_cursor", "validation_error"):
                bad.append(f"{url} cursor → {r.json().get('code')}")

    # The export streams only once everything has been checked: a 4xx, or a whole file.
    r = await probe("GET", "/issues/issues/export.csv?from=0001-01-01")
    assert r.status_code == 422, r.text[:300]

    record(
        "hostile_input",
        {
            "requests": sum(results.values()),
            "endpoints": len(results),
            "server_errors_or_not_problem": len(bad),
            "examples": bad[:10],
        },
    )
    assert bad == [], "\n".join(bad[:20])


async def test_a_formula_in_an_issue_title_is_neutralised_in_the_export(demo_system: System) -> None:
    s = demo_system
    resident = s.auth("resident", sub="probe-resident", scopes=["community:yunxing"])
    payloads = ['=HYPERLINK("http://evil.example","点我")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    for title in payloads:
        r = await s.client.post(
            "/issues/issues",
            headers=resident,
            json={"category": "road", "title": title, "community": "yunxing", "description": "probe"},
        )
        assert r.status_code in (200, 201), r.text
    r = await s.client.get("/issues/issues/export.csv", headers=s.auth("admin"))
    assert r.status_code == 200
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    titles = {row["title"] for row in csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))}
    for title in payloads:
        assert title not in titles, f"{title!r} reaches the spreadsheet as a formula"
        assert "'" + title in titles
    dangerous = [t for t in titles if t and t[0] in "=+-@\t\r"]
    record("csv_injection", {"payloads": len(payloads), "formula_cells_in_export": len(dangerous)})
    assert dangerous == []


async def test_a_lost_unique_race_answers_409_not_500(demo_system: System) -> None:
    s = demo_system
    admin = s.auth("admin")
    name = f"race-{utcnow().timestamp()}"
    answers = await asyncio.gather(
        *[s.client.post("/points/teams", headers=admin, json={"name": name, "community": "yunxing"}) for _ in range(8)]
    )
    statuses = sorted(r.status_code for r in answers)
    record("unique_race", {"concurrent_creates": len(answers), "statuses": statuses})
    assert 500 not in statuses
    assert statuses.count(201) == 1, statuses
    for r in answers:
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "team_name_taken"  # whether the check or the constraint stopped it


async def test_the_published_hash_of_a_closed_settlement_matches_the_file_served(demo_system: System) -> None:
    s = demo_system
    admin = s.auth("admin")
    canteens = (await s.client.get("/canteen/canteens", headers=admin)).json()["items"]
    checked = 0
    for canteen in canteens:
        closed = None
        for month in ("2026-10", "2026-09", "2025-12", "2025-11"):
            r = await s.client.post(f"/canteen/canteens/{canteen['id']}/settlements/{month}/close", headers=admin)
            if r.status_code == 200:
                closed = (month, r.json())
                break
        if closed is None:
            continue
        month, figures = closed
        served = await s.client.get(f"/canteen/canteens/{canteen['id']}/settlements/{month}/claim.csv", headers=admin)
        assert served.status_code == 200
        assert served.content.startswith("\ufeff".encode()), "the claim file keeps its BOM for Excel/WPS"
        assert hashlib.sha256(served.content).hexdigest() == figures["csv_sha256"]
        checked += 1
    record("settlement_hash", {"closed_settlements_checked": checked, "hash_matches_bytes_served": checked})
    assert checked >= 1


async def test_nul_bytes_and_private_photo_urls_are_refused(demo_system: System) -> None:
    s = demo_system
    resident = s.auth("resident", sub="probe-resident", scopes=["community:yunxing"])
    r = await s.client.post(
        "/issues/issues", headers=resident, json={"category": "road", "title": "a\u0000b", "community": "yunxing"}
    )
    assert r.status_code == 422, r.text
    r = await s.client.post(
        "/issues/issues",
        headers=resident,
        content=json.dumps({"category": "road", "description": "x\x00y", "community": "yunxing"}).encode(),
    )
    assert r.status_code == 422, r.text
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/x.jpg",
        "https://127.0.0.1/a.jpg",
        "https://10.0.0.5/a.jpg",
        "https://localhost/a.jpg",
        "https://[::1]/a.jpg",
        "http://example.com/a.jpg",
        "https://192.168.1.2/a.jpg",
        "https://[fe80::1]/a.jpg",
        "javascript:alert(1)",
    ]:
        r = await s.client.post(
            "/issues/issues", headers=resident, json={"category": "road", "community": "yunxing", "photo_urls": [url]}
        )
        assert r.status_code == 422, (url, r.status_code, r.text[:200])
    r = await s.client.post(
        "/issues/issues",
        headers=resident,
        json={"category": "road", "community": "yunxing", "photo_urls": ["https://photos.example.com/a.jpg"]},
    )
    assert (r.status_code, r.json()["code"]) == (422, "photo_urls_not_accepted")  # uploads only (photo_ids)


async def test_the_demo_diner_zhao_is_linked_to_her_visits_resident(demo_system: System) -> None:
    s = demo_system
    admin = s.auth("admin")
    diners = (await s.client.get("/canteen/diners", headers=admin, params={"limit": 200})).json()["items"]
    zhao = next(d for d in diners if d["name"].startswith("赵"))
    assert zhao["resident_id"] is not None
    r = await s.client.get(f"/visits/residents/{zhao['resident_id']}", headers=admin)
    assert r.status_code == 200 and r.json()["id_number"][-4:] == zhao["id_number"][-4:]


async def test_overlong_text_and_cursors_and_odd_coordinates_are_refused_up_front(demo_system: System) -> None:
    """Free text, codes and cursors are bounded as their columns (``text(n)``, ``Cursor``): one character over is
    a 422 problem+json before any handler runs (a 400 in its own error shape on Open311), never a database
    error; coordinates are finite degrees (``Latitude``/``Longitude``)."""
    s = demo_system
    admin = s.auth("admin", sub="probe-admin")
    over = {
        "/issues/issues?community=" + "c" * 51: admin,
        "/issues/issues?category=" + "c" * 41: admin,
        "/issues/issues?cursor=" + "A" * 513: admin,
        "/issues/issues?lat=nan&lng=120": admin,
        "/issues/issues?lat=91&lng=120": admin,
        "/issues/catalogue/categories/" + "c" * 41: {},
        "/issues/figures?community=" + "c" * 51: {},
        "/points/tasks?type_code=" + "t" * 41: admin,
        "/points/hazard-reports?category=" + "h" * 21: admin,
        "/points/riders?cursor=" + "A" * 513: admin,
        "/visits/compounds/" + "c" * 41: admin,
        "/visits/households?cursor=" + "A" * 513: admin,
        "/canteen/diners?community=" + "c" * 51: admin,
        "/canteen/subsidy-rules/" + "k" * 51: admin,
        "/canteen/orders?cursor=" + "A" * 513: admin,
    }
    for url, headers in over.items():
        r = await s.client.get(url, headers=headers)
        assert (r.status_code, _is_problem(r), r.json().get("code")) == (422, True, "validation_error"), (url, r.text)
    at_the_limit = await s.client.get("/issues/issues?community=" + "c" * 50, headers=admin)
    assert at_the_limit.status_code == 200, at_the_limit.text
    r = await s.client.post("/canteen/diners", headers=admin, json={"name": "x", "dislikes": ["辣" * 31]})
    assert r.status_code == 422 and "dislikes" in r.text, r.text
    r = await s.client.get("/issues/open311/v2/requests/" + "a" * 200 + ".json")
    assert r.status_code == 400 and r.json()[0]["code"] == 400, r.text  # Open311's own error shape
