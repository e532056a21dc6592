"""The notify lists' text filters refuse a NUL byte as invalid input naming the filter (never a database
error, nor, on SQLite, an empty page)."""

from __future__ import annotations

import pytest

from tests.support.client import System
from tests.support.nul import let_nul_bytes_through


@pytest.mark.parametrize(
    ("path", "name"),
    [("/notify/duty-roster", "community"), ("/notify/deliveries", "channel"), ("/notify/deliveries", "recipient")],
)
async def test_a_nul_byte_in_a_text_filter_is_refused_naming_it(
    notify: System, monkeypatch: pytest.MonkeyPatch, path: str, name: str
) -> None:
    admin = notify.auth("admin", sub="admin-lists")
    r = await notify.client.get(path, headers=admin, params={name: "yun\x00xing"})
    assert (r.status_code, r.json()["code"]) == (422, "nul_byte"), r.text
    let_nul_bytes_through(monkeypatch)
    r = await notify.client.get(path, headers=admin, params={name: "yun\x00xing"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error"), r.text
    assert [e["field"] for e in r.json()["errors"]] == [f"query.{name}"]
    assert (await notify.client.get(path, headers=admin, params={name: "yunxing"})).status_code == 200
