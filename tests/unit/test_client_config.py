"""What a mini-program or H5 page meets (issue 18, item 5): ``GET /<service>/config`` (anonymous, cacheable),
CORS for H5 pages, and responses ``wx.request`` handles well (UTF-8 JSON, ISO-8601 times with an offset,
ASCII header values, nothing HTTP/2-only)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from minsheng import SERVICES
from minsheng.platform.app import EXPOSED_HEADERS, LOCAL_ORIGINS, cors_origins
from minsheng.platform.clientconfig import etag_matches
from minsheng.platform.coords import CoordSystem
from minsheng.platform.pagination import MAX_LIMIT
from minsheng.settings import DEV_FIELD_KEY, Settings
from services.issues import config as issues_config
from services.issues.demo_catalogue import seed_catalogue
from services.issues.models import IssueCreate
from tests.conftest import embedded_settings
from tests.issues.helpers import FLOOD, PNG
from tests.support.client import System, running_system

# 2026-12-06T19:30:00, with optional fraction; what follows must be an offset (Z or ±hh:mm).
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})")


async def test_every_service_answers_its_config_anonymously(system: System) -> None:
    for service in SERVICES:
        r = await system.client.get(f"/{service}/config")
        assert r.status_code == 200, (service, r.text)
        config = r.json()
        assert config["service"] == service
        assert config["languages"] == {"default": "zh-CN", "supported": ["zh-CN", "en"]}
        assert config["coordinates"]["supported"] == [c.value for c in CoordSystem]
        assert config["coordinates"]["by_client"]["mini_program"] == "gcj02"
        assert config["coordinates"]["stored"] == "wgs84"
        assert config["page_sizes"]["max"] == MAX_LIMIT
        assert r.headers["cache-control"] == "public, max-age=300"


async def test_issues_config_has_the_categories_photo_limits_and_text_lengths(system: System) -> None:
    await seed_catalogue(system.runtime("issues"))
    config = (await system.client.get("/issues/config")).json()
    listed = (await system.client.get("/issues/catalogue/categories", params={"limit": 200})).json()["items"]
    assert [c["code"] for c in config["categories"]] == sorted(c["code"] for c in listed)
    flooding = next(c for c in config["categories"] if c["code"] == "flooding")
    assert flooding["name_zh"] == "积水内涝" and set(flooding) == {"code", "name_zh", "name_en", "group", "urgent"}
    [photos] = config["uploads"]
    assert photos["path"] == "/issues/photos" and photos["field"] == "file"
    assert photos["max_bytes"] == issues_config.get().photo_max_bytes and "image/jpeg" in photos["accepted_types"]
    # The text lengths come from the document, which comes from the models: they agree with validation.
    description = IssueCreate.model_fields["description"].metadata
    assert config["text_limits"]["reportIssue"]["description"] == next(m.max_length for m in description)
    assert "categories" not in (await system.client.get("/identity/config")).json()


async def test_config_revalidates_with_its_etag_and_changes_when_a_category_does(system: System) -> None:
    await seed_catalogue(system.runtime("issues"))
    first = await system.client.get("/issues/config")
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again = await system.client.get("/issues/config", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = await system.client.get("/issues/config", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    stale = await system.client.get("/issues/config", headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.json() == first.json()

    category = {
        "code": "stray_dogs",
        "name_zh": "流浪犬",
        "name_en": "Stray dogs",
        "group": "public_order",
        "department": (await system.client.get("/issues/catalogue/departments")).json()["items"][0]["code"],
        "first_response_minutes": 60,
        "resolution_hours": 48,
    }
    r = await system.client.post("/issues/catalogue/categories", headers=system.auth("admin"), json=category)
    assert r.status_code == 201, r.text
    changed = await system.client.get("/issues/config", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "stray_dogs" in {c["code"] for c in changed.json()["categories"]}


def test_if_none_match_parsing() -> None:
    assert etag_matches('"a"', '"a"') and etag_matches('W/"a"', '"a"') and etag_matches("*", '"a"')
    assert etag_matches('"b", "a"', '"a"')
    assert not etag_matches(None, '"a"') and not etag_matches('"b"', '"a"') and not etag_matches("", '"a"')


def test_cors_origins_default_by_mode_and_explicit_list(tmp_path: Path) -> None:
    assert cors_origins(embedded_settings(tmp_path)) == ([], LOCAL_ORIGINS)
    key = SecretStr(DEV_FIELD_KEY)
    distributed = Settings(mode="distributed", database_url="postgresql+asyncpg://m@db/m", field_encryption_key=key)
    assert cors_origins(distributed) == ([], None)
    listed = embedded_settings(tmp_path, cors_origins=["https://h5.example.gov.cn"])
    assert cors_origins(listed) == (["https://h5.example.gov.cn"], None)
    assert re.fullmatch(LOCAL_ORIGINS, "http://localhost:5173") and re.fullmatch(LOCAL_ORIGINS, "http://127.0.0.1")
    assert not re.fullmatch(LOCAL_ORIGINS, "http://localhost.evil.example") and not re.fullmatch(
        LOCAL_ORIGINS, "https://evil.example/localhost"
    )


async def _preflight(client: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await client.options(
        "/issues/issues",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


async def test_cors_lets_a_listed_h5_origin_call_and_read_the_headers_it_needs(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, cors_origins=["https://h5.example.gov.cn"])
    async with running_system(settings, services=("issues",)) as s:
        ok = await _preflight(s.client, "https://h5.example.gov.cn")
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://h5.example.gov.cn"
        assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
        refused = await _preflight(s.client, "https://elsewhere.example")
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

        r = await s.client.get("/issues/config", headers={"Origin": "https://h5.example.gov.cn"})
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {h.lower() for h in EXPOSED_HEADERS} <= exposed
        assert {"etag", "retry-after", "content-language", "x-request-id"} <= exposed
        foreign = await s.client.get("/issues/config", headers={"Origin": "http://localhost:5173"})
        assert "access-control-allow-origin" not in foreign.headers  # an explicit list replaces the default


async def test_cors_embedded_default_allows_local_development_pages(system: System) -> None:
    assert (await _preflight(system.client, "http://localhost:5173")).headers[
        "access-control-allow-origin"
    ] == "http://localhost:5173"
    assert "access-control-allow-origin" not in (await _preflight(system.client, "https://h5.example")).headers


def _datetimes_without_offset(value: Any, where: str = "") -> list[str]:
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _datetimes_without_offset(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _datetimes_without_offset(v, f"{where}[{i}]")]
    if isinstance(value, str) and (m := DATETIME.match(value)) and not OFFSET.fullmatch(value[m.end() :]):
        return [f"{where}={value}"]
    return []


def _wechat_friendly(r: httpx.Response, label: str) -> Any:
    content_type = r.headers["content-type"].split(";")[0]
    assert content_type in ("application/json", "application/problem+json"), (label, content_type)
    assert "charset" not in r.headers["content-type"] or "utf-8" in r.headers["content-type"].lower(), label
    body = json.loads(r.content.decode("utf-8"))  # strict UTF-8, no BOM
    assert not r.content.startswith(b"\xef\xbb\xbf"), label
    for name, value in r.headers.items():
        assert value.isascii(), (label, name, value)  # wx.request and HTTP/1.1 header values are ASCII
    # Nothing a plain HTTP/1.1 client cannot use: no trailers, no server-push hints, no upgrade.
    assert not {"trailer", "upgrade", "alt-svc"} & {n.lower() for n in r.headers}, label
    assert "preload" not in r.headers.get("link", ""), label
    assert _datetimes_without_offset(body) == [], label
    return body


async def test_representative_responses_are_utf8_json_with_offset_datetimes(system: System) -> None:
    await seed_catalogue(system.runtime("issues"))
    c = system.client
    login = await c.post("/identity/wechat/login", json={"code": "wx-friendly"})
    tokens = _wechat_friendly(login, "login")
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    _wechat_friendly(await c.get("/identity/me", headers=me), "me")
    photo = await c.post("/issues/photos", headers=me, files={"file": ("p.png", PNG, "image/png")})
    photo_id = _wechat_friendly(photo, "photo")["id"]
    report = await c.post("/issues/issues", headers=me, json={**FLOOD, "photo_ids": [photo_id]})
    issue = _wechat_friendly(report, "report")
    assert "T" in issue["created_at"] and issue["description"] == FLOOD["description"]  # Chinese as UTF-8
    assert str(FLOOD["description"]).encode() in report.content  # not \\u-escaped
    detail = _wechat_friendly(await c.get(f"/issues/issues/{issue['id']}", headers=me), "detail")
    assert detail["timeline"] and _datetimes_without_offset(detail) == []
    _wechat_friendly(await c.get("/issues/issues", headers=me, params={"mine": True}), "list")
    _wechat_friendly(await c.get("/notify/inbox", headers=me), "inbox")
    _wechat_friendly(await c.get("/issues/config"), "config")
    _wechat_friendly(await c.get("/issues/issues"), "problem 401")
    _wechat_friendly(await c.post("/issues/issues", headers=me, json={"category": ""}), "problem 422")


def test_the_datetime_walker_catches_a_naive_time() -> None:
    assert _datetimes_without_offset({"a": [{"at": "2026-12-06T19:30:00"}]}) == [".a[0].at=2026-12-06T19:30:00"]
    assert _datetimes_without_offset({"at": "2026-12-06T19:30:00.123+08:00", "d": "2026-12-06", "z": "…Z"}) == []
    assert _datetimes_without_offset({"at": "2026-12-06T11:30:00Z"}) == []
