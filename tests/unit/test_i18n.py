"""Languages: 简体中文 by default, English on ``Accept-Language: en``; the catalogs and their CI check."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from minsheng.platform import catalogs, i18n
from minsheng.platform.errors import Problem, conflict, install_problem_handlers, invalid, not_found
from minsheng.platform.i18n import Localized, Term, _t, negotiate, translate, validation_message
from minsheng.platform.ids import uuid7
from tests.support.client import System

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "zh_CN"),
        ("", "zh_CN"),
        ("en", "en"),
        ("EN-gb", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh", "zh_CN"),
        ("zh-CN", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),  # a phone in mainland China
        ("en;q=0.5, zh;q=0.8", "zh_CN"),  # q-values, not order, decide
        ("zh;q=0.4, en;q=0.7", "en"),
        ("fr, en;q=0.5", "en"),  # the first *supported* language by preference
        ("fr-FR, de;q=0.9", "zh_CN"),  # nothing supported: the default
        ("en;q=0, zh;q=0.1", "zh_CN"),  # q=0 means "not acceptable"
        ("en;q=0", "zh_CN"),
        ("*", "zh_CN"),
        ("en;q=abc, zh;q=0.2", "zh_CN"),  # a malformed q drops only that entry
        (" en ; q=1 , zh ; q=0.9 ", "en"),
        ("ja,en-US;q=0.8", "en"),
    ],
)
def test_accept_language_negotiation(header: str | None, locale: str) -> None:
    assert negotiate(header) == locale


def test_a_template_is_translated_with_the_same_placeholders() -> None:
    detail = _t("The task is {status}; it cannot be completed.", status="verified")
    assert translate(detail, "zh_CN") == "任务状态为 verified，不能完成。"
    assert translate(detail, "en") == str(detail) == "The task is verified; it cannot be completed."
    assert translate("Wrong user name or password", "zh_CN") == "用户名或密码错误"
    assert translate("A message nobody translated", "zh_CN") == "A message nobody translated"  # English fallback


def test_things_and_bilingual_data_in_a_message() -> None:
    problem = not_found("issue_type", "x1")
    assert problem.code == "issue_type_not_found"
    assert translate(problem.title, "en") == "issue type not found"  # capitalised when rendered
    assert translate(problem.title, "zh_CN") == "未找到issue type"  # a thing without an entry: its spaced name
    assert translate(not_found("household", 7).detail, "zh_CN") == "没有编号为 7 的住户（或不在您的权限范围内）。"
    assert translate(Term("must not contain the user name"), "zh_CN") == "不能包含用户名"
    place = _t("Go to: {place}.", place=Localized(zh_CN="派出所", en="The police station"))
    assert translate(place, "zh_CN") == "请前往派出所办理。"
    assert translate(place, "en") == "Go to: The police station."


def test_a_broken_translation_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {**i18n.catalog("zh_CN"), "This vote is {state}.": "该投票{status}。"}
    monkeypatch.setattr(i18n, "catalog", lambda locale: broken if locale == "zh_CN" else {})
    assert translate(_t("This vote is {state}.", state="closed"), "zh_CN") == "This vote is closed."


def test_problem_keeps_its_english_text_for_logs() -> None:
    problem = conflict("task_not_open", _t("The task is {status}; it cannot be completed.", status="claimed"))
    assert str(problem) == "409 task_not_open: The task is claimed; it cannot be completed."
    assert problem.extra == {}
    assert str(Problem(404, "x_not_found", "X not found")) == "404 x_not_found: X not found"


def test_validation_messages_by_type_with_their_context() -> None:
    too_long = {"type": "string_too_long", "msg": "String should have at most 3 characters", "ctx": {"max_length": 3}}
    assert validation_message(too_long, "zh_CN") == "最多只能有 3 个字符"
    assert validation_message(too_long, "en") == "String should have at most 3 characters"  # pydantic's own
    missing = {"type": "missing", "msg": "Field required"}
    assert validation_message(missing, "zh_CN") == "必填项"
    unknown = {"type": "some_new_type", "msg": "Something pydantic says", "ctx": {"x": 1}}
    assert validation_message(unknown, "zh_CN") == "Something pydantic says"
    enum = {
        "type": "enum",
        "msg": "Input should be 'fire', 'road' or 'flood'",
        "ctx": {"expected": "'fire', 'road' or 'flood'"},
    }
    assert validation_message(enum, "zh_CN") == "应为 'fire'、'road' 或 'flood'"
    no_ctx = {"type": "greater_than", "msg": "Input should be greater than 0"}  # ctx missing: pydantic's text
    assert validation_message(no_ctx, "zh_CN") == "Input should be greater than 0"


# The same invalid requests in every service: a problem raised by the service and a validation error.
CASES: dict[str, list[tuple[str, str, dict[str, Any] | None, int, str, str]]] = {
    # service: [(method, path, body, status, code, the Chinese title)]
    "visits": [
        ("GET", f"/visits/households/{uuid7()}", None, 404, "household_not_found", "未找到住户"),
        ("POST", "/visits/buildings", {}, 422, "validation_error", "请求无效"),
    ],
    "issues": [
        ("GET", f"/issues/issues/{uuid7()}", None, 404, "issue_not_found", "未找到问题"),
        ("POST", "/issues/catalogue/categories", {"code": "-"}, 422, "validation_error", "请求无效"),
    ],
    "points": [
        ("GET", f"/points/hazard-reports/{uuid7()}", None, 404, "hazard_report_not_found", "未找到隐患上报"),
        ("GET", "/points/hazard-reports?limit=0", None, 422, "validation_error", "请求无效"),
    ],
    "canteen": [
        ("GET", f"/canteen/menus/{uuid7()}", None, 404, "menu_not_found", "未找到菜单"),
        ("POST", "/canteen/canteens", {}, 422, "validation_error", "请求无效"),
    ],
    "identity": [
        ("POST", "/identity/staff/login", {"username": "nobody", "password": "x" * 12}, 401, "invalid_credentials",
         "用户名或密码错误"),
        ("POST", "/identity/staff/login", {}, 422, "validation_error", "请求无效"),
    ],
    "notify": [
        ("POST", f"/notify/inbox/{uuid7()}/read", None, 404, "message_not_found", "未找到消息"),
        ("POST", "/notify/inbox/read", {"ids": "x"}, 422, "validation_error", "请求无效"),
    ],
}  # fmt: skip


def _same_apart_from_words(zh: dict[str, Any], en: dict[str, Any]) -> None:
    words = {"title", "detail", "errors", "request_id"}
    assert {k: v for k, v in zh.items() if k not in words} == {k: v for k, v in en.items() if k not in words}
    for a, b in zip(zh.get("errors", []), en.get("errors", []), strict=True):
        assert (a["field"], a["type"]) == (b["field"], b["type"])


async def test_every_service_answers_in_chinese_by_default_and_in_english_on_request(system: System) -> None:
    admin = system.auth("admin")
    for service, cases in CASES.items():
        for method, path, body, status, code, title_zh in cases:
            zh = await system.client.request(method, path, json=body, headers=admin)
            en = await system.client.request(method, path, json=body, headers={**admin, "Accept-Language": "en"})
            assert zh.status_code == en.status_code == status, (service, zh.text)
            assert zh.headers["content-language"] == "zh-CN" and en.headers["content-language"] == "en"
            assert "accept-language" in zh.headers["vary"].lower()
            a, b = zh.json(), en.json()
            assert a["code"] == b["code"] == code
            assert a["title"] == title_zh, (service, a)
            assert b["title"].isascii() and b["title"] != a["title"]
            _same_apart_from_words(a, b)
            if status == 422:
                assert a["detail"].startswith("请检查：") and b["detail"].startswith("Check: ")
                assert all(not e["message"].isascii() for e in a["errors"]), a["errors"]
                assert all(e["message"].isascii() for e in b["errors"]), b["errors"]
            else:
                assert not a["detail"].isascii() and b["detail"].isascii()


async def test_route_errors_and_extension_members_in_chinese(system: System) -> None:
    r = await system.client.get("/points/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found" and r.json()["title"] == "未找到"
    r = await system.client.get("/points/nowhere", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert r.json()["title"] == "Not Found" and r.headers["content-language"] == "en"
    r = await system.client.delete("/points/hazard-reports", headers=system.auth("admin"))
    assert r.status_code == 405 and r.json()["title"] == "不支持该请求方法" and "allow" in r.headers
    # The platform's own answers outside the views: a NUL byte refused by the middleware.
    r = await system.client.post("/identity/staff/login", json={"username": "a\u0000b", "password": "x"})
    assert r.status_code == 422 and r.json()["code"] == "nul_byte"
    assert r.json()["detail"] == "文本中不能包含 NUL 字符（U+0000）。" and r.headers["content-language"] == "zh-CN"
    r = await system.client.get("/points/hazard-reports?cursor=%%%", headers=system.auth("admin"))
    body = r.json()
    assert r.status_code == 422 and body["code"] == "invalid_cursor" and body["title"] == "分页游标无效"
    assert body["errors"][0]["field"] == "cursor"


async def test_extension_members_and_headers_do_not_change_with_the_language() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/cancel")
    async def cancel() -> None:
        detail = _t("An order that is {status} cannot be cancelled.", status="served")
        raise Problem(
            409,
            "order_not_cancellable",
            "Conflict with the current state",
            detail,
            headers={"Retry-After": "3"},
            status="served",  # clashes with the standard member: answered as current_status
        )

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        zh = await client.get("/cancel")
        en = await client.get("/cancel", headers={"Accept-Language": "en-US"})
    assert zh.json()["detail"] == "状态为 served 的订单不能取消。" and zh.json()["title"] == "与当前状态冲突"
    assert en.json()["detail"] == "An order that is served cannot be cancelled."
    assert en.json()["title"] == "Conflict with the current state"
    _same_apart_from_words(zh.json(), en.json())
    assert zh.json()["current_status"] == "served" and zh.json()["status"] == 409
    assert zh.headers["retry-after"] == en.headers["retry-after"] == "3"


def test_the_catalogs_are_complete_and_in_step_with_the_code() -> None:
    assert catalogs.check() == []


def _copy(tmp_path: Path) -> Path:
    """The platform and one service (extraction over all six takes seconds), catalogs brought in step."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "minsheng", root / "minsheng", ignore=ignore)
    shutil.copytree(REPO / "services" / "notify", root / "services" / "notify", ignore=ignore)
    shutil.copy(REPO / "babel.cfg", root / "babel.cfg")
    gone = catalogs.check(root)  # the other services' messages are no longer in this copy's code
    assert gone and all("is no longer in the code" in p or "not in step" in p for p in gone), gone
    catalogs.update(root)
    return root


def test_the_check_fails_on_a_new_message_until_it_is_translated(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert catalogs.check(root) == []
    views = root / "services" / "notify" / "views.py"
    views.write_text(
        views.read_text()
        + "\n\ndef _gone(n: int) -> Problem:\n"
        + '    return Problem(410, "gone", "Gone for good", _t("Gone {n} days ago.", n=n))\n'
    )
    stale = catalogs.check(root)
    assert any("messages.pot is stale: 'Gone for good'" in p for p in stale), stale
    assert catalogs.main(["check", "--root", str(root)]) == 1

    catalogs.update(root)
    missing = catalogs.check(root)
    assert sorted(missing) == [
        "zh_CN: 'Gone for good' is untranslated",
        "zh_CN: 'Gone {n} days ago.' is untranslated",
    ], missing

    po = root / "minsheng" / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po"
    text = po.read_text()
    text = text.replace('msgid "Gone for good"\nmsgstr ""', 'msgid "Gone for good"\nmsgstr "已永久移除"')
    po.write_text(
        text.replace(
            'msgid "Gone {n} days ago."\nmsgstr ""', 'msgid "Gone {n} days ago."\nmsgstr "{days} 天前已移除。"'
        )
    )
    wrong = catalogs.check(root)
    assert len(wrong) == 1 and "placeholders ['days'] differ from ['n']" in wrong[0], wrong

    po.write_text(po.read_text().replace('"{days} 天前已移除。"', '"{n} 天前已移除。"'))
    assert catalogs.check(root) == []
    assert catalogs.main(["check", "--root", str(root)]) == 0


def test_the_check_refuses_an_f_string_message(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    views = root / "services" / "notify" / "views.py"
    views.write_text(
        views.read_text() + '\n\ndef _gone(n: int) -> Problem:\n    return conflict("gone", f"Gone {n} days ago.")\n'
    )
    found = catalogs.check(root)
    assert any("an f-string as conflict(…)'s message" in p for p in found), found


def test_translating_a_problem_costs_at_most_20_microseconds() -> None:
    from bench.i18n import run

    figures = run(repeat=2000)  # CPU time of this process, so a busy machine barely moves it
    assert figures["messages"] > 400
    for key in ("translate_not_found_us", "translate_conflict_us", "translate_validation_3_errors_us"):
        assert 0 < figures[key] <= 20, figures


def _babel_translations(text: str, locale: str | None = None) -> dict[str, str]:
    import io

    from babel.messages.pofile import read_po

    cat = read_po(io.BytesIO(text.encode()), locale=locale)
    return {
        m.id: m.string
        for m in cat
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string and not m.fuzzy
    }


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_catalog_reader_agrees_with_babel_on_the_shipped_catalogs(locale: str) -> None:
    text = (i18n.LOCALE_DIR / locale / "LC_MESSAGES" / f"{i18n.DOMAIN}.po").read_text(encoding="utf-8")
    assert i18n.read_po_translations(text) == _babel_translations(text, locale)


PO_CORNERS = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#: a.py:1
msgid "Plain"
msgstr "普通"

#, fuzzy
msgid "Fuzzy"
msgstr "模糊"

#, python-brace-format, fuzzy
msgid "Fuzzy among other flags"
msgstr "也模糊"

msgid ""
"Multi "
"line \"quoted\"\n"
"tab\t back\\slash"
msgstr "多"
"行"

msgid "Untranslated"
msgstr ""

msgid "One apple"
msgid_plural "{n} apples"
msgstr[0] "苹果"
msgstr[1] "苹果们"

#, python-brace-format
msgid "After a plural {x}"
msgstr "复数之后 {x}"
msgid "No blank line before"
msgstr "无空行"

#~ msgid "Obsolete"
#~ msgstr "过时"
"""


def test_the_catalog_reader_keeps_what_babel_keeps_in_every_corner_of_the_format() -> None:
    found = i18n.read_po_translations(PO_CORNERS)
    assert found == _babel_translations(PO_CORNERS)
    assert found == {
        "Plain": "普通",
        'Multi line "quoted"\ntab\t back\\slash': "多行",
        "After a plural {x}": "复数之后 {x}",
        "No blank line before": "无空行",
    }


def test_reading_the_catalogs_leaves_babel_unloaded() -> None:
    """Babel's locale data is ~7 MB of every server's idle memory (issue 17: ≤ 120 MB): a server never needs it."""
    import subprocess
    import sys

    code = (
        "import sys; from minsheng.platform.i18n import load_catalogs; load_catalogs(); print('babel' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_invalid_is_a_422_naming_its_field_and_its_texts_are_catalogued() -> None:
    problem = invalid("month_invalid", "Invalid month", "Use YYYY-MM.", field="month", message="expected YYYY-MM")
    assert (problem.status, problem.code, problem.title, problem.detail) == (
        422,
        "month_invalid",
        "Invalid month",
        "Use YYYY-MM.",
    )
    assert problem.extra == {"errors": [{"field": "month", "message": "expected YYYY-MM", "type": "value_error"}]}
    tree = ast.parse('invalid("c", "Some title", "Some detail", field="f", message="not a msgid")')
    found = [lit.value for _, arg in catalogs.message_nodes(tree) for lit in catalogs.literals(arg)]
    assert found == ["Some title", "Some detail"]
