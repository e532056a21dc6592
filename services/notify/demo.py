"""Demo data: the demo residents as notify knows them (as if identity had told it: WeChat openids, a verified
phone) and one accepted subscription each, so resolving a demo issue sends a WeChat message. Idempotent."""

from __future__ import annotations

import hashlib

from minsheng.platform.privacy import mask_phone
from minsheng.platform.service import ServiceRuntime
from services.notify.models import Recipient, Subscription
from services.notify.state import cipher_of

DEMO_ACCOUNTS = ["demo-jiaona", *[f"demo-resident-{n}" for n in range(1, 11)]]
DEMO_TEMPLATES = ["TPL_ISSUE_RESOLVED", "TPL_ISSUE_PROGRESS"]


def demo_openid(account: str) -> str:
    return "oDemo" + hashlib.sha256(account.encode()).hexdigest()[:23]


async def seed_demo(runtime: ServiceRuntime) -> None:
    fc = cipher_of(runtime.settings)
    async with runtime.uow() as uow:
        s = uow.session
        if await s.get(Recipient, DEMO_ACCOUNTS[0]) is not None:
            return
        for n, account in enumerate(DEMO_ACCOUNTS):
            phone = f"1393520{2000 + n:04d}"
            s.add(
                Recipient(
                    account_id=account,
                    kind="wechat",
                    roles=["resident"],
                    openid_enc=fc.encrypt(demo_openid(account)),
                    phone_enc=fc.encrypt(phone),
                    phone_masked=mask_phone(phone),
                )
            )
            for template in DEMO_TEMPLATES:
                s.add(Subscription(account_id=account, template_id=template, credits=1))
        await uow.commit()
