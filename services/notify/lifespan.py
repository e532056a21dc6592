"""The notify service's own resources while it runs: an HTTP client, the provider stand-in (embedded mode, or
when enabled), a channel adapter for each provider it has credentials for, and the sender loop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx

from minsheng.platform.service import ServiceRuntime
from services.notify import config, state
from services.notify.channels import ChannelAdapter, TencentSms, WeChatSubscribe, WeComRobot
from services.notify.sender import Notifier
from services.notify.standin import (
    STANDIN_APPID,
    STANDIN_SECRET,
    STANDIN_SMS_APP,
    STANDIN_SMS_ID,
    STANDIN_SMS_KEY,
    RunningStandin,
    serve_standin,
)

log = logging.getLogger(__name__)


def build_adapters(client: httpx.AsyncClient, standin: RunningStandin | None) -> dict[str, ChannelAdapter]:
    s = config.get()
    adapters: dict[str, ChannelAdapter] = {}
    if standin is not None:
        base = standin.base_url
        adapters["wechat"] = WeChatSubscribe(
            client, f"{base}/wechat", STANDIN_APPID, STANDIN_SECRET, s.miniprogram_state
        )
        adapters["sms"] = TencentSms(
            client, f"{base}/sms", STANDIN_SMS_ID, STANDIN_SMS_KEY, STANDIN_SMS_APP, s.sms_sign_name, s.sms_region
        )
        keys = {k: v.get_secret_value() for k, v in s.wecom_robot_keys.items()} or {"*": "standin-duty-robot"}
        adapters["wecom"] = WeComRobot(client, f"{base}/wecom", keys)
        return adapters
    if s.wechat_appid and s.wechat_secret is not None:
        adapters["wechat"] = WeChatSubscribe(
            client, s.wechat_base_url, s.wechat_appid, s.wechat_secret.get_secret_value(), s.miniprogram_state
        )
    if s.sms_secret_id and s.sms_secret_key is not None and s.sms_app_id:
        adapters["sms"] = TencentSms(
            client,
            s.sms_base_url,
            s.sms_secret_id,
            s.sms_secret_key.get_secret_value(),
            s.sms_app_id,
            s.sms_sign_name,
            s.sms_region,
        )
    if s.wecom_robot_keys:
        adapters["wecom"] = WeComRobot(
            client, s.wecom_base_url, {k: v.get_secret_value() for k, v in s.wecom_robot_keys.items()}
        )
    missing = sorted({"wechat", "sms", "wecom"} - set(adapters))
    if missing:
        log.warning(
            "notify: no credentials for %s: those deliveries are held (channel_not_configured)", ", ".join(missing)
        )
    return adapters


@contextlib.asynccontextmanager
async def lifespan(runtime: ServiceRuntime) -> AsyncIterator[None]:
    """The notify service's own resources: an HTTP client, the stand-in (embedded mode, or when enabled),
    the adapters and the sender loop (when this process runs background work)."""
    s = config.get()
    async with contextlib.AsyncExitStack() as stack:
        client = httpx.AsyncClient(
            timeout=s.http_timeout_seconds,
            limits=httpx.Limits(
                max_connections=s.sender_concurrency + 4,  # and a few for access-token refreshes
                max_keepalive_connections=s.sender_concurrency + 4,
            ),
        )
        stack.push_async_callback(client.aclose)
        standin = None
        if s.use_standin(runtime.settings.mode):
            if runtime.settings.mode != "embedded":
                log.warning("notify: provider stand-ins enabled in distributed mode (MINSHENG_NOTIFY_STANDIN)")
            standin = await stack.enter_async_context(serve_standin(s.standin_host, s.standin_port))
        notifier = Notifier(runtime.db, build_adapters(client, standin), standin=standin)
        state.NOTIFIERS[runtime.db] = notifier
        if runtime.jobs_enabled:
            notifier.start()
        try:
            yield
        finally:
            await notifier.stop()
            state.NOTIFIERS.pop(runtime.db, None)
