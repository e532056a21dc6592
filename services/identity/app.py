"""The identity service as the platform runs it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from minsheng.platform.privacy import SealedColumns
from minsheng.platform.service import ServiceRuntime
from minsheng.platform.service_layout import service_spec
from services.identity.keys import start_keys
from services.identity.wechat_login import close_wechat


@asynccontextmanager
async def lifespan(runtime: ServiceRuntime) -> AsyncIterator[None]:
    """The signing keys (and, when no real API is configured, the WeChat stand-in) for as long as it runs."""
    await start_keys(runtime)
    try:
        yield
    finally:
        await close_wechat(runtime)


SPEC = service_spec(
    __name__,
    title="Identity 身份",
    description="Accounts and sign-in (WeChat mini-program, staff passwords + TOTP); issues the tokens every "
    "service verifies.",
    lifespan=lifespan,
    # bound to their rows (services.identity.sealing); those sealed before were not, and still read
    sealed=(
        SealedColumns(
            "wechat_identities",
            ("openid_enc", "unionid_enc", "session_key_enc", "phone_enc"),
            hashes=(("openid_hash", "openid_enc"), ("phone_hash", "phone_enc")),
            key="account_id",
            unbound=True,
        ),
        SealedColumns("staff_credentials", ("totp_secret_enc",), key="account_id", unbound=True),
        SealedColumns("signing_keys", ("private_key_enc",), key="kid", unbound=True),
        SealedColumns("wechat_app_tokens", ("token_enc",), key="appid", unbound=True),
    ),
)
