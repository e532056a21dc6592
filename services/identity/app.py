"""The identity service as the platform runs it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from minsheng.platform.service import ServiceRuntime, ServiceSpec
from services.identity.handlers import HANDLERS
from services.identity.jobs import JOBS
from services.identity.keys import start_keys
from services.identity.models import metadata, platform_tables
from services.identity.views import router
from services.identity.wechat_login import close_wechat


@asynccontextmanager
async def lifespan(runtime: ServiceRuntime) -> AsyncIterator[None]:
    """The signing keys (and, when no real API is configured, the WeChat stand-in) for as long as it runs."""
    await start_keys(runtime)
    try:
        yield
    finally:
        await close_wechat(runtime)


SPEC = ServiceSpec(
    name="identity",
    title="Identity 身份",
    description="Accounts and sign-in (WeChat mini-program, staff passwords + TOTP); issues the tokens every "
    "service verifies.",
    metadata=metadata,
    tables=platform_tables,
    router=router,
    migrations_dir=Path(__file__).parent / "migrations",
    handlers=HANDLERS,
    jobs=JOBS,
    lifespan=lifespan,
)
