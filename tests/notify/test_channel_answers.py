"""How the providers' HTTP answers become delivery outcomes (services.notify.channels)."""

from __future__ import annotations

import httpx
import pytest

from services.notify.channels import TencentSms, WeComRobot


def _robot(status: int, body: bytes) -> WeComRobot:
    transport = httpx.MockTransport(lambda _: httpx.Response(status, content=body))
    return WeComRobot(httpx.AsyncClient(transport=transport), "http://robot.test", {"*": "key-1"})


@pytest.mark.parametrize(
    ("status", "body", "kind", "detail"),
    [
        (200, b'{"errcode": 0}', "ok", None),
        (200, b"{}", "ok", None),
        (200, b'{"errcode": 45009}', "throttled", "errcode 45009"),
        (200, b"<html>gateway</html>", "transient", "bad json"),
        (200, b"[1, 2]", "transient", "bad json"),
        (200, b'{"errcode": "x"}', "transient", "bad json"),
        (503, b"", "transient", "http 503"),
        (429, b"", "throttled", "http 429"),
        (404, b"", "permanent", "http 404"),
    ],
)
async def test_a_wecom_answer_becomes_an_outcome(status: int, body: bytes, kind: str, detail: str | None) -> None:
    outcome = await _robot(status, body).send("any", {"content": "hello"})
    assert (outcome.kind, outcome.error) == (kind, detail)


async def test_an_sms_answer_without_a_response_is_bad_json() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"Other": {}}))
    sms = TencentSms(httpx.AsyncClient(transport=transport), "http://sms.test", "id", "key", "app", "sign")
    outcome = await sms.send("+8613800000000", {"template_id": "1", "params": []})
    assert (outcome.kind, outcome.error) == ("transient", "bad json")
