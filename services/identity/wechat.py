"""The WeChat mini-program adapter: ``sns/jscode2session``, ``cgi-bin/stable_token`` and
``wxa/business/getuserphonenumber`` over httpx. WeChat answers errors as HTTP 200 ``{"errcode", "errmsg"}``
(errmsg carries a request-id suffix: match the errcode only); they become problems a client can act on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from minsheng.platform.errors import Problem, too_many

log = logging.getLogger(__name__)

TOKEN_INVALID = frozenset({40001, 42001})


class WechatError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class Session:
    openid: str
    session_key: str
    unionid: str | None


@dataclass(frozen=True)
class AppToken:
    token: str
    expires_in: int


class WechatClient:
    def __init__(self, base_url: str, appid: str, secret: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.appid = appid
        self._secret = secret
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kw)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("WeChat %s failed: %s", path, type(exc).__name__)
            raise WechatError(-2, "unreachable") from exc
        if not isinstance(body, dict):
            raise WechatError(-2, "unexpected answer")
        errcode = int(body.get("errcode") or 0)  # a missing errcode means success (older answers)
        if errcode:
            raise WechatError(errcode, str(body.get("errmsg", "")))
        return body

    async def code2session(self, code: str) -> Session:
        body = await self._call(
            "GET",
            "/sns/jscode2session",
            params={"appid": self.appid, "secret": self._secret, "js_code": code, "grant_type": "authorization_code"},
        )
        if not body.get("openid") or not body.get("session_key"):
            raise WechatError(-2, "no openid in the answer")
        return Session(
            str(body["openid"]), str(body["session_key"]), str(body["unionid"]) if body.get("unionid") else None
        )

    async def stable_token(self, *, force_refresh: bool = False) -> AppToken:
        body = await self._call(
            "POST",
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": force_refresh,
            },
        )
        return AppToken(str(body["access_token"]), int(body.get("expires_in", 7200)))

    async def phone_number(self, code: str, access_token: str) -> str:
        body = await self._call(
            "POST", "/wxa/business/getuserphonenumber", params={"access_token": access_token}, json={"code": code}
        )
        info = body.get("phone_info") or {}
        phone = info.get("purePhoneNumber") or info.get("phoneNumber")
        if not phone:
            raise WechatError(-2, "no phone in the answer")
        country = str(info.get("countryCode", "86"))  # typed a string, sent as a number: accept both
        return str(phone) if country == "86" else f"+{country}{phone}"


def problem_for(exc: WechatError) -> Problem:
    """What a client sees for a WeChat error."""
    code = exc.errcode
    if code in (40029, 40163):
        return Problem(
            401,
            "wechat_code_invalid",
            "The WeChat code is not valid",
            "The code is wrong, expired or used already: call wx.login() (or getPhoneNumber) again.",
        )
    if code == 45011:
        return too_many("wechat_rate_limited", "Too many WeChat sign-ins", "Wait a minute and try again.", wait=60)
    if code == 40226:
        return Problem(
            403,
            "wechat_user_blocked",
            "WeChat refused this user",
            "WeChat marked this sign-in as high risk; it cannot be used here.",
        )
    if code == -1:
        return Problem(503, "wechat_busy", "WeChat is busy", "Try again in a moment.", headers={"Retry-After": "2"})
    if code == -2:
        return Problem(
            503, "wechat_unavailable", "WeChat cannot be reached", "Try again shortly.", headers={"Retry-After": "5"}
        )
    log.error("WeChat answered errcode %s (%s): check MINSHENG_IDENTITY_WECHAT_* settings", code, exc.errmsg)
    return Problem(
        503,
        "wechat_unavailable",
        "WeChat sign-in is unavailable",
        "The server could not complete the WeChat call; try again later.",
        headers={"Retry-After": "30"},
    )
