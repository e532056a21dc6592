"""Recording WeChat one-time subscriptions is retry-safe: a phone that resends after a lost answer, with the
same Idempotency-Key, gets the first answer again and adds no second credit."""

from __future__ import annotations

from tests.notify.helpers import new_sub
from tests.support.client import System

ACCEPTED = {"results": {"errMsg": "requestSubscribeMessage:ok", "TPL_ISSUE_RESOLVED": "accept"}}


async def test_a_resent_subscription_with_the_same_key_adds_one_credit_and_replays_the_answer(notify: System) -> None:
    me = notify.auth("resident", sub=new_sub())
    keyed = {**me, "Idempotency-Key": "subscribe-tap-1"}
    first = await notify.client.post("/notify/subscriptions", headers=keyed, json=ACCEPTED)
    assert first.status_code == 200, first.text
    assert first.json() == [{"template_id": "TPL_ISSUE_RESOLVED", "credits": 1}]
    assert "Idempotent-Replayed" not in first.headers

    again = await notify.client.post("/notify/subscriptions", headers=keyed, json=ACCEPTED)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    subs = (await notify.client.get("/notify/subscriptions", headers=me)).json()
    assert subs == [{"template_id": "TPL_ISSUE_RESOLVED", "credits": 1}]

    # The same key with another answer is refused; a new tap (a new key) is a new credit.
    other = {"results": {"errMsg": "requestSubscribeMessage:ok", "TPL_ISSUE_RESOLVED": "reject"}}
    reused = await notify.client.post("/notify/subscriptions", headers=keyed, json=other)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    r = await notify.client.post("/notify/subscriptions", headers={**me, "Idempotency-Key": "tap-2"}, json=ACCEPTED)
    assert r.status_code == 200 and r.json() == [{"template_id": "TPL_ISSUE_RESOLVED", "credits": 2}]
