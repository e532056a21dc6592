"""Open311 GeoReport v2 conformance: every endpoint in .json and .xml, the spec's error format, API keys."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from minsheng.platform.ids import utcnow
from tests.issues.helpers import manager, resident, staff
from tests.support.client import System
from tests.support.nul import let_nul_bytes_through

BASE = "/issues/open311/v2"


def parse(response: Any) -> Any:
    """The body in a format-independent shape: JSON as is; XML as (root tag, children as dicts)."""
    ctype = response.headers["content-type"]
    if response.request.url.path.endswith(".json") or ctype.startswith("application/json"):
        assert ctype == "application/json; charset=utf-8"
        return json.loads(response.text)
    assert ctype == "text/xml; charset=utf-8"
    assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def spec_error(response: Any) -> tuple[int, str]:
    """The code and description of an answer in the spec's error format, JSON or XML."""
    body = parse(response)
    if isinstance(body, list):
        return body[0]["code"], body[0]["description"]
    assert body.tag == "errors" and body[0].tag == "error"
    return int(body[0].findtext("code")), body[0].findtext("description") or ""


def xml_items(root: ET.Element) -> list[dict[str, str | None]]:
    return [{child.tag: child.text for child in item} for item in root]


async def api_key(s: System) -> str:
    r = await s.client.post("/issues/open311-keys", headers=manager(s), json={"name": "city-app"})
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    assert key.startswith("ms311_")
    return key  # type: ignore[no-any-return]


def form(key: str | None, **fields: str) -> dict[str, str]:
    base = {
        "service_code": "flooding",
        "lat": "40.0098",
        "long": "112.6983",
        "description": "小区积水",
        "attribute[depth]": "knee",
        "first_name": "娜",
        "last_name": "焦",
        "phone": "13912345678",
    }
    return {**base, **({"api_key": key} if key else {}), **fields}


async def test_discovery_and_services_in_both_formats(issues: System) -> None:
    r = await issues.client.get(f"{BASE}/discovery.json")
    body = parse(r)
    endpoint = body["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/issues/open311/v2") and "application/json" in endpoint["formats"]
    root = parse(await issues.client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery" and [f.text for f in root.iter("format")] == ["text/xml", "application/json"]

    services = parse(await issues.client.get(f"{BASE}/services.json"))
    by_code = {s["service_code"]: s for s in services}
    assert by_code["flooding"]["metadata"] is True and by_code["flooding"]["type"] == "realtime"
    assert by_code["rubbish"]["metadata"] is False and by_code["fire"]["group"] == "safety"
    assert by_code["fire"]["service_name"] == "火情"
    english = parse(await issues.client.get(f"{BASE}/services.json", params={"locale": "en"}))
    assert {s["service_code"]: s["service_name"] for s in english}["fire"] == "Fire"
    root = parse(await issues.client.get(f"{BASE}/services.xml"))
    assert root.tag == "services" and {i["service_code"] for i in xml_items(root)} == set(by_code)
    assert {i["service_code"]: i["metadata"] for i in xml_items(root)}["flooding"] == "true"

    definition = parse(await issues.client.get(f"{BASE}/services/flooding.json"))
    assert definition["service_code"] == "flooding"
    depth = definition["attributes"][0]
    assert (depth["code"], depth["datatype"], depth["required"], depth["order"]) == (
        "depth",
        "singlevaluelist",
        True,
        1,
    )
    assert [v["key"] for v in depth["values"]] == ["ankle", "knee", "deeper"]
    root = parse(await issues.client.get(f"{BASE}/services/flooding.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "flooding"
    attrs = root.find("attributes")
    assert attrs is not None and [a.findtext("code") for a in attrs] == ["depth", "indoors"]
    assert [v.findtext("key") for v in attrs[0].iter("value")] == ["ankle", "knee", "deeper"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_errors_use_the_spec_format(issues: System, fmt: str) -> None:
    cases = [
        ("GET", f"{BASE}/services/nope.{fmt}", None, 404),
        ("GET", f"{BASE}/services/cert_kinship.{fmt}", None, 404),
        ("GET", f"{BASE}/services.{fmt}?jurisdiction_id=elsewhere.gov", None, 404),
        ("GET", f"{BASE}/requests/not-an-id.{fmt}", None, 404),
        ("GET", f"{BASE}/tokens/nope.{fmt}", None, 404),
        ("GET", f"{BASE}/requests.{fmt}?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", None, 400),
        ("GET", f"{BASE}/requests.{fmt}?start_date=yesterday", None, 400),
        ("GET", f"{BASE}/requests.{fmt}?status=pending", None, 400),
        ("GET", f"{BASE}/requests.{fmt}?page_size=5000", None, 400),
        ("POST", f"{BASE}/requests.{fmt}", form(None), 403),
        ("POST", f"{BASE}/requests.{fmt}", form("ms311_dead_beef"), 403),
    ]
    for method, url, data, status in cases:
        r = await issues.client.request(method, url, data=data)
        assert r.status_code == status, (url, r.text)
        body = parse(r)
        if fmt == "json":
            assert isinstance(body, list) and body[0]["code"] == status and body[0]["description"], body
        else:
            assert body.tag == "errors" and body[0].tag == "error"
            assert body[0].findtext("code") == str(status) and body[0].findtext("description")
    r = await issues.client.get(f"{BASE}/services/cert_kinship.{fmt}")
    assert "police station" in r.text


async def test_post_then_read_back_by_id_token_and_query(issues: System) -> None:
    key = await api_key(issues)
    missing = [
        ({"service_code": ""}, 400),
        ({"service_code": "nope"}, 404),
        ({"service_code": "cert_income"}, 400),
        ({"lat": "", "long": ""}, 400),
        ({"long": ""}, 400),
        ({"attribute[depth]": ""}, 400),
        ({"attribute[depth]": "waist"}, 400),
        ({"lat": "north"}, 400),
        ({"account_id": "a" * 91}, 400),  # longer than the reporter column holds with the key name
    ]
    for fields, status in missing:
        r = await issues.client.post(f"{BASE}/requests.json", data=form(key, **fields))
        assert r.status_code == status, (fields, r.text)

    r = await issues.client.post(
        f"{BASE}/requests.json", data=form(key, account_id="acct-7", media_url="https://cdn.example/1.jpg")
    )
    assert r.status_code == 200, r.text
    [created] = parse(r)
    assert created["account_id"] == "acct-7" and "token" not in created
    assert created["service_notice"] == "Site survey the next day; repair within a week."
    rid = created["service_request_id"]

    r = await issues.client.post(
        f"{BASE}/requests.xml",
        data=form(key, service_code="rubbish", lat="40.0301", long="112.7101", **{"attribute[depth]": ""}),
    )
    assert r.status_code == 400  # depth is not a question of rubbish
    r = await issues.client.post(
        f"{BASE}/requests.xml",
        data={"api_key": key, "service_code": "rubbish", "address_string": "南街12号", "description": "垃圾满了"},
    )
    assert r.status_code == 200, r.text
    rid2 = xml_items(parse(r))[0]["service_request_id"]

    [one] = parse(await issues.client.get(f"{BASE}/requests/{rid}.json"))
    assert one["status"] == "open" and one["service_code"] == "flooding" and one["lat"] == 40.0098
    assert one["media_url"] == "https://cdn.example/1.jpg" and one["requested_datetime"].endswith("Z")
    assert one["agency_responsible"] == "市政设施部" and one["expected_datetime"]
    assert "phone" not in one and "13912345678" not in json.dumps(one)
    root = parse(await issues.client.get(f"{BASE}/requests/{rid}.xml"))
    assert root.tag == "service_requests" and xml_items(root)[0]["service_request_id"] == rid

    # The issue is the same one the staff API sees, with the contact stored privately.
    detail = (await issues.client.get(f"/issues/issues/{rid}", headers=staff(issues))).json()
    assert detail["channel"] == "open311" and detail["contact_phone"] == "139****5678"
    assert detail["reporter"] == "open311:city-app:acct-7"

    async with issues.runtime("issues").uow() as uow:
        from uuid import UUID

        from services.issues.models import Issue

        token = (await uow.session.get(Issue, UUID(rid))).open311_token  # type: ignore[union-attr]
    [tok] = parse(await issues.client.get(f"{BASE}/tokens/{token}.json"))
    assert tok == {"service_request_id": rid, "token": token}
    assert xml_items(parse(await issues.client.get(f"{BASE}/tokens/{token}.xml")))[0]["service_request_id"] == rid

    await issues.client.post(f"/issues/issues/{rid2}/resolve", headers=staff(issues, "s", "*"), json={"note": "已清运"})
    listed = parse(await issues.client.get(f"{BASE}/requests.json"))
    assert [x["service_request_id"] for x in listed] == [rid2, rid]
    closed = parse(await issues.client.get(f"{BASE}/requests.json", params={"status": "closed"}))
    assert [(x["service_request_id"], x["status"], x["status_notes"]) for x in closed] == [(rid2, "closed", "已清运")]
    both = parse(await issues.client.get(f"{BASE}/requests.json", params={"status": "open,closed"}))
    assert len(both) == 2
    flooding = parse(await issues.client.get(f"{BASE}/requests.xml", params={"service_code": "flooding,road"}))
    assert [i["service_request_id"] for i in xml_items(flooding)] == [rid]
    by_ids = parse(
        await issues.client.get(
            f"{BASE}/requests.json", params={"service_request_id": f"{rid},{rid2}", "status": "closed"}
        )
    )  # ids override every other argument
    assert {x["service_request_id"] for x in by_ids} == {rid, rid2}
    page2 = parse(await issues.client.get(f"{BASE}/requests.json", params={"page": 2, "page_size": 1}))
    assert [x["service_request_id"] for x in page2] == [rid]
    old = (utcnow() - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parse(await issues.client.get(f"{BASE}/requests.json", params={"start_date": old})) == []
    assert parse(await issues.client.get(f"{BASE}/requests.json", params={"jurisdiction_id": "zuoyun.gov.cn"}))

    private = (
        await issues.client.post(
            "/issues/issues",
            headers=resident(issues),
            json={"category": "rubbish", "description": "x", "community": "yuntai", "is_public": False},
        )
    ).json()
    r = await issues.client.get(f"{BASE}/requests/{private['id']}.json")
    assert r.status_code == 404  # private issues are not published


async def test_api_keys_are_managed_by_staff_and_revocable(issues: System) -> None:
    assert (
        await issues.client.post("/issues/open311-keys", headers=staff(issues), json={"name": "x"})
    ).status_code == 403
    key = await api_key(issues)
    keys = (await issues.client.get("/issues/open311-keys", headers=manager(issues))).json()["items"]
    assert len(keys) == 1 and "api_key" not in keys[0] and key.split("_")[1] == keys[0]["prefix"]
    ok = await issues.client.post(f"{BASE}/requests.json", data=form(key))
    assert ok.status_code == 200
    used = (await issues.client.get("/issues/open311-keys", headers=manager(issues))).json()["items"][0]
    assert used["last_used_at"] is not None
    r = await issues.client.delete(f"/issues/open311-keys/{keys[0]['id']}", headers=manager(issues))
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = await issues.client.post(f"{BASE}/requests.json", data=form(key))
    assert r.status_code == 403 and parse(r)[0]["code"] == 403
    tampered = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
    assert (await issues.client.post(f"{BASE}/requests.json", data=form(tampered))).status_code == 403


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_nul_byte_in_a_path_part_is_a_400_in_the_spec_format_naming_the_part(
    issues: System, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    parts = {
        f"services/flood%00ing.{fmt}": "path.name",
        f"requests/1%00.{fmt}": "path.name",
        f"tokens/t%00.{fmt}": "path.name",
        f"services.{fmt}%00": "path.fmt",
    }
    for part in parts:
        r = await issues.client.get(f"{BASE}/{part}")
        assert r.status_code == 400 and spec_error(r) == (400, "Text may not contain NUL bytes (U+0000)."), r.text
    let_nul_bytes_through(monkeypatch)
    for part, field in parts.items():
        r = await issues.client.get(f"{BASE}/{part}")
        code, description = spec_error(r)
        assert (r.status_code, code) == (400, 400) and description.startswith(f"{field}: "), (part, r.text)
