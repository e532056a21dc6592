"""Demo data: the demo residents as notify knows them (as if identity had told it: WeChat openids, a verified
phone) and one accepted subscription each, so resolving a demo issue sends a WeChat message; and one open-ended
duty shift for Yunxing (the demo's urgent fires), so an urgent issue there reaches the person on duty (no
WeChat subscription: by SMS) besides the duty group's robot. Idempotent, each part on its own."""

from __future__ import annotations

import hashlib

from sqlmodel import select

from minsheng.platform.privacy import field_cipher, mask_phone
from minsheng.platform.service import ServiceRuntime
from services.notify.models import DutyShift, Recipient, Subscription
from services.notify.sealing import seal_recipient, seal_shift_phone

DEMO_ACCOUNTS = ["demo-jiaona", *[f"demo-resident-{n}" for n in range(1, 11)]]
DEMO_TEMPLATES = ["TPL_ISSUE_RESOLVED", "TPL_ISSUE_PROGRESS"]
# The demo's desk staff (the issues demo's ``demo-staff``; identity has no demo accounts, and the roster takes
# an account it has not heard of on trust), on duty for the community of the demo's fire reports.
DEMO_DUTY_ACCOUNT = "demo-staff"
DEMO_DUTY_COMMUNITY = "yunxing"
DEMO_DUTY_PHONE = "13935208001"


def demo_openid(account: str) -> str:
    return "oDemo" + hashlib.sha256(account.encode()).hexdigest()[:23]


async def seed_demo(runtime: ServiceRuntime) -> None:
    fc = field_cipher(runtime.settings)
    async with runtime.uow() as uow:
        s = uow.session
        if await s.get(Recipient, DEMO_ACCOUNTS[0]) is None:
            for n, account in enumerate(DEMO_ACCOUNTS):
                phone = f"1393520{2000 + n:04d}"
                s.add(
                    Recipient(
                        account_id=account,
                        kind="wechat",
                        roles=["resident"],
                        openid_enc=seal_recipient(fc, "openid_enc", account, demo_openid(account)),
                        phone_enc=seal_recipient(fc, "phone_enc", account, phone),
                        phone_masked=mask_phone(phone),
                    )
                )
                for template in DEMO_TEMPLATES:
                    s.add(Subscription(account_id=account, template_id=template, credits=1))
        seeded_shift = await s.execute(select(DutyShift.id).where(DutyShift.created_by == "demo").limit(1))
        if seeded_shift.first() is None:
            shift = DutyShift(
                community=DEMO_DUTY_COMMUNITY,
                account_id=DEMO_DUTY_ACCOUNT,
                name="王值班",
                phone_masked=mask_phone(DEMO_DUTY_PHONE),
                created_by="demo",
            )
            shift.phone_enc = seal_shift_phone(fc, shift.id, DEMO_DUTY_PHONE)
            s.add(shift)
        await uow.commit()
