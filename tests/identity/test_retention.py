"""The purge job: refresh tokens a day past expiry, sign-in records past the retention period and stale lockout
rows go; the others stay."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import sqlalchemy as sa

from minsheng.platform.ids import utcnow
from services.identity import config
from services.identity.jobs import purge
from services.identity.models import AUTH_EVENTS, REFRESH_TOKENS, THROTTLES, AuthEvent, RefreshToken, SigninThrottle
from tests.support.client import System


async def test_the_purge_job_deletes_only_what_is_past_its_time(system: System) -> None:
    runtime, now = system.runtime("identity"), utcnow()
    kept_days = config.get().auth_event_retention_days
    account = uuid4()
    async with runtime.uow() as uow:
        for label, expires in (("dead", now - timedelta(days=2)), ("alive", now + timedelta(days=2))):
            uow.session.add(RefreshToken(token_hash=label, family_id=uuid4(), account_id=account, expires_at=expires))
        for outcome, at in (("old", now - timedelta(days=kept_days + 1)), ("recent", now - timedelta(days=1))):
            uow.session.add(AuthEvent(at=at, account_id=account, kind="staff_login", outcome=outcome))
        for key, at in (("stale", now - timedelta(days=2)), ("fresh", now)):
            uow.session.add(SigninThrottle(key=key, failures=1, updated_at=at))
        await uow.commit()

    counts = await purge(runtime)
    assert counts == {"refresh_tokens": 1, "auth_events": 1, "signin_throttles": 1}
    async with runtime.uow() as uow:
        left = [
            [row[0] for row in (await uow.session.execute(sa.select(column))).all()]
            for column in (REFRESH_TOKENS.c.token_hash, AUTH_EVENTS.c.outcome, THROTTLES.c.key)
        ]
    assert [sorted(values) for values in left] == [["alive"], ["recent"], ["fresh"]]
