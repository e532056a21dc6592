"""identity → notify without hand-made events: a resident signs in through identity's real WeChat sign-in (the
embedded mode's WeChat stand-in), binds the WeChat-verified phone and chooses English; the account events
identity publishes become notify's recipient (openid, phone, language), and an issue rule reaches the account
by WeChat subscribe message, in English, at the openid WeChat gave identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minsheng.platform import ratelimit
from minsheng.platform.privacy import cipher_for
from services.identity import config as identity_config
from services.identity.standin import openid_for
from services.issues.demo_catalogue import seed_catalogue
from services.notify import config
from services.notify.models import Recipient
from services.notify.sealing import open_recipient
from tests.conftest import embedded_settings
from tests.issues.helpers import FLOOD, act, report, staff
from tests.notify.helpers import flush, received
from tests.support.client import System, running_system


@pytest.fixture
async def signed_in(tmp_path: Path, fast_notify: config.NotifySettings) -> AsyncIterator[System]:
    ratelimit.BUCKETS.clear()
    async with running_system(embedded_settings(tmp_path), services=("identity", "issues", "notify")) as s:
        await seed_catalogue(s.runtime("issues"))
        yield s
    ratelimit.BUCKETS.clear()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def recipient(s: System, account_id: str) -> Recipient | None:
    async with s.runtime("notify").db.sessionmaker() as session:
        return await session.get(Recipient, account_id)


async def test_a_wechat_sign_in_makes_the_recipient_a_rule_reaches_by_subscribe_message(signed_in: System) -> None:
    s = signed_in
    r = await s.client.post("/identity/wechat/login", json={"code": "chain.1"})
    assert r.status_code == 200, r.text
    tokens = r.json()
    account_id, me = tokens["account"]["id"], bearer(tokens)
    openid = openid_for(identity_config.get().wechat_appid, "chain.1")
    await s.settle()
    known = await recipient(s, account_id)  # AccountCreated + AccountContactChanged (the openid)
    assert known is not None and known.roles == ["resident"] and known.status == "active"
    assert known.locale == "zh-CN" and known.phone_masked is None
    fc = cipher_for(s.runtime("notify").db)  # the recipient's values are bound to its row (issue 13)
    assert open_recipient(fc, "openid_enc", account_id, known.openid_enc) == openid

    r = await s.client.put("/identity/me/locale", headers=me, json={"locale": "en"})
    assert r.status_code == 200 and r.json()["locale"] == "en", r.text
    assert (await s.client.put("/identity/me/locale", headers=me, json={"locale": "fr"})).status_code == 422
    # Binding the phone afterwards publishes the whole contact again: the language stays English.
    r = await s.client.post("/identity/wechat/phone", headers=me, json={"code": "phone-13812345678"})
    assert r.status_code == 200, r.text
    await s.settle()
    known = await recipient(s, account_id)
    assert known is not None and known.locale == "en" and known.phone_masked == "138****5678"
    assert open_recipient(fc, "phone_enc", account_id, known.phone_enc) == "13812345678"
    assert open_recipient(fc, "openid_enc", account_id, known.openid_enc) == openid

    # The resident, with identity's token, accepts the resolution template, reports a flood; staff resolve it.
    r = await s.client.post(
        "/notify/subscriptions",
        headers=me,
        json={"results": {"errMsg": "requestSubscribeMessage:ok", "TPL_ISSUE_RESOLVED": "accept"}},
    )
    assert r.status_code == 200, r.text
    issue = await report(s, me, FLOOD)
    await act(s, issue["id"], "resolve", staff(s), {"template": "fixed"})
    await flush(s)

    [sent] = received(s, "wechat")
    assert sent["touser"] == openid and sent["template_id"] == "TPL_ISSUE_RESOLVED"
    assert sent["lang"] == "en_US" and sent["page"] == f"pages/issue/confirm?id={issue['id']}"
    assert sent["data"]["thing1"] == {"value": "flooding"}
    inbox = (await s.client.get("/notify/inbox", headers=me)).json()
    assert [(m["rule"], m["title"]) for m in inbox["items"]] == [("issue_resolved", "Your report was resolved")]
