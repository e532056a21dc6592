"""The service catalogue: public reading, staff management, and helpful answers for matters not handled here."""

from __future__ import annotations

import pytest

from tests.issues.helpers import FLOOD, manager, report, resident, staff
from tests.support.client import System
from tests.support.nul import let_nul_bytes_through


async def test_catalogue_is_public_and_complete(issues: System) -> None:
    r = await issues.client.get("/issues/catalogue/categories")
    assert r.status_code == 200, r.text
    cats = {c["code"]: c for c in r.json()["items"]}
    fire = cats["fire"]
    assert fire["name_zh"] == "火情" and fire["name_en"] == "Fire" and fire["urgent"] is True
    assert "119" in fire["emergency_guidance"] and fire["department_name_en"] == "Emergency Management and Safety"
    flood = cats["flooding"]
    assert flood["first_response_minutes"] == 24 * 60 and flood["resolution_hours"] == 7 * 24
    assert [a["code"] for a in flood["attributes"]] == ["depth", "indoors"] and flood["attributes"][0]["required"]

    page = (await issues.client.get("/issues/catalogue/categories", params={"limit": 5})).json()
    rest = (
        await issues.client.get("/issues/catalogue/categories", params={"limit": 100, "cursor": page["next_cursor"]})
    ).json()
    assert len(page["items"]) == 5 and len(page["items"]) + len(rest["items"]) == len(cats)

    depts = (await issues.client.get("/issues/catalogue/departments")).json()["items"]
    assert len(depts) == 7
    communities = {c["code"] for c in (await issues.client.get("/issues/catalogue/communities")).json()["items"]}
    assert communities == {"yunxing", "dongyan", "yuntai", "yunhe", "gangcheng", "xinyuan", "nanjie"}


async def test_not_handled_matters_get_a_helpful_answer(issues: System) -> None:
    matters = (await issues.client.get("/issues/catalogue/not-handled", params={"kind": "certificate"})).json()
    codes = {m["code"] for m in matters["items"]}
    assert {"cert_kinship", "cert_residence", "cert_no_crime"} <= codes

    found = (await issues.client.get("/issues/catalogue/search", params={"q": "亲属"})).json()
    assert [m["code"] for m in found["not_handled"]] == ["cert_kinship"] and found["categories"] == []
    assert (await issues.client.get("/issues/catalogue/search", params={"q": "积水"})).json()["categories"][0][
        "code"
    ] == "flooding"

    r = await issues.client.post(
        "/issues/issues", headers=resident(issues), json={**FLOOD, "category": "cert_kinship", "attributes": {}}
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "not_handled_here" and "派出所" in body["go_to_zh"] and body["go_to_en"]
    assert body["title"].endswith("不在此办理") and body["detail"] == f"请前往{body['go_to_zh']}办理。"
    r = await issues.client.post(
        "/issues/issues",
        headers={**resident(issues), "Accept-Language": "en"},
        json={**FLOOD, "category": "cert_kinship", "attributes": {}},
    )
    english = r.json()
    assert english["title"].endswith("is not handled here") and english["detail"] == f"Go to: {body['go_to_en']}."
    assert {k: v for k, v in english.items() if k not in ("title", "detail", "request_id")} == {
        k: v for k, v in body.items() if k not in ("title", "detail", "request_id")
    }
    assert (await issues.client.get("/issues/issues", headers=resident(issues), params={"mine": True})).json()[
        "items"
    ] == []


async def test_staff_manage_the_catalogue(issues: System) -> None:
    new = {
        "code": "stray_dogs",
        "name_zh": "流浪犬",
        "name_en": "Stray dogs",
        "department": "urban_mgmt",
        "first_response_minutes": 240,
        "resolution_hours": 72,
        "materials": ["照片 Photo"],
        "attributes": [{"code": "count", "datatype": "number", "description": "How many?", "required": True}],
    }
    r = await issues.client.post("/issues/catalogue/categories", headers=staff(issues), json=new)
    assert r.status_code == 403 and r.json()["code"] == "forbidden_role"  # community staff: not county-wide
    r = await issues.client.post("/issues/catalogue/categories", headers=manager(issues), json=new)
    assert r.status_code == 201, r.text
    assert (await issues.client.post("/issues/catalogue/categories", headers=manager(issues), json=new)).json()[
        "code"
    ] == "category_exists"
    bad = {**new, "code": "x2", "attributes": [{"code": "kind", "datatype": "singlevaluelist", "description": "?"}]}
    r = await issues.client.post("/issues/catalogue/categories", headers=manager(issues), json=bad)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = await issues.client.post(
        "/issues/catalogue/categories", headers=manager(issues), json={**new, "code": "Stray Dogs!"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code"  # codes are slugs
    r = await issues.client.post(
        "/issues/catalogue/categories", headers=manager(issues), json={**new, "code": "x3", "department": "nowhere"}
    )
    assert r.status_code == 422 and r.json()["code"] == "unknown_department"

    body = {**FLOOD, "category": "stray_dogs", "attributes": {"count": "three"}}
    r = await issues.client.post("/issues/issues", headers=resident(issues), json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid_attribute"
    assert r.json()["errors"][0]["field"] == "attributes.count"
    issue = await report(issues, resident(issues), {**body, "attributes": {"count": "3"}})
    assert issue["attributes"] == {"count": 3.0} and issue["title"] == "流浪犬"

    r = await issues.client.patch(
        "/issues/catalogue/categories/stray_dogs", headers=manager(issues), json={"active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await issues.client.post("/issues/issues", headers=resident(issues), json=body)
    assert r.status_code == 422 and r.json()["code"] == "unknown_category"

    r = await issues.client.post(
        "/issues/catalogue/not-handled",
        headers=manager(issues),
        json={
            "code": "cert_travel",
            "title_zh": "出行证明",
            "title_en": "Travel certificate",
            "go_to_zh": "无需证明",
            "go_to_en": "No certificate is needed",
        },
    )
    assert r.status_code == 201, r.text
    r = await issues.client.post(
        "/issues/reply-templates",
        headers=staff(issues),
        json={"code": "thanks", "title": "感谢", "body": "感谢反映“{title}”。"},
    )
    assert r.status_code == 201
    templates = (await issues.client.get("/issues/reply-templates", headers=staff(issues))).json()["items"]
    assert "thanks" in {t["code"] for t in templates}
    assert (await issues.client.get("/issues/reply-templates", headers=resident(issues))).status_code == 403


async def test_a_nul_byte_in_the_search_is_refused_naming_the_query(
    issues: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await issues.client.get("/issues/catalogue/search", params={"q": "积\x00水"})
    assert (r.status_code, r.json()["code"]) == (422, "nul_byte"), r.text
    let_nul_bytes_through(monkeypatch)
    r = await issues.client.get("/issues/catalogue/search", params={"q": "积\x00水"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error"), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["query.q"]
