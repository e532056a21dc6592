"""The channel port and one adapter per provider: WeChat subscribe messages, Tencent Cloud SMS, WeCom group
robots. (The in-app inbox is the fourth channel: a message row is its delivery, written at fan-out.)

Every adapter answers an :class:`Outcome` whose ``kind`` is the error class the sender acts on:
``ok`` (accepted), ``transient`` (retry with backoff), ``throttled`` (wait, then retry: not an attempt),
``permanent`` (fail with the reason; fall back to SMS where the rule says so). Token expiry is handled
inside the WeChat adapter (refresh, retry once). Errors name codes, never message bodies or addresses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

OutcomeKind = Literal["ok", "transient", "throttled", "permanent"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    error: str | None = None
    provider_ref: str | None = None
    retry_after: float | None = None
    no_subscription: bool = False


OK = "ok"


class ChannelAdapter(Protocol):
    name: str

    async def send(self, address: str, request: dict[str, Any]) -> Outcome: ...


T = TypeVar("T")


def _http_failure(exc: Exception | None = None, status: int | None = None) -> Outcome:
    if status is not None:
        if status == 429:
            return Outcome("throttled", f"http {status}")
        return Outcome("transient" if status >= 500 else "permanent", f"http {status}")
    return Outcome("transient", type(exc).__name__ if exc else "network")


def _read_answer(resp: httpx.Response, read: Callable[[Any], T]) -> T | Outcome:
    """``read`` of the JSON body of a 200 answer; else the outcome: of the HTTP status, or ``bad json`` for a
    body that is not JSON or not of the provider's shape."""
    if resp.status_code != 200:
        return _http_failure(status=resp.status_code)
    try:
        return read(resp.json())
    except (ValueError, KeyError, TypeError, AttributeError):
        return Outcome("transient", "bad json")


def _errcode(body: Any) -> int:
    """The ``errcode`` of a WeChat/WeCom answer (absent: 0, success)."""
    return int(body.get("errcode", 0))


# --- WeChat subscribe messages ---------------------------------------------------------------------------------

WECHAT_TOKEN_ERRORS = {40001, 42001, 41001}
WECHAT_PERMANENT = {
    40003: "bad touser",
    40037: "bad template_id",
    43101: "no subscription left",
    47003: "bad argument",
    41030: "page not in released app",
    40013: "bad appid",
    40125: "bad secret",
    40164: "ip not whitelisted",
}
WECHAT_THROTTLED = {45009, 45011}


class WeChatSubscribe:
    """``POST cgi-bin/message/subscribe/send`` with the app's access token, fetched from ``cgi-bin/stable_token``
    and cached until 5 minutes before it expires; a 40001/42001 answer refreshes it and retries once."""

    name = "wechat"

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, appid: str, secret: str, miniprogram_state: str = "formal"
    ) -> None:
        self.client, self.base_url, self.appid, self.secret = client, base_url.rstrip("/"), appid, secret
        self.miniprogram_state = miniprogram_state
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.token_fetches = 0

    async def access_token(self, *, force: bool = False, stale: str | None = None) -> str:
        async with self._lock:
            if force and stale is not None and self._token != stale:
                force = False  # another send refreshed it meanwhile
            if not force and self._token and time.monotonic() < self._expires:
                return self._token
            resp = await self.client.post(
                f"{self.base_url}/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                    "force_refresh": False,
                },
            )
            body = resp.json()
            if body.get("errcode") or "access_token" not in body:
                raise TokenError(int(body.get("errcode", -1)))
            self.token_fetches += 1
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + max(60, int(body.get("expires_in", 7200)) - 300)
            return self._token

    async def send(self, address: str, request: dict[str, Any]) -> Outcome:
        payload: dict[str, Any] = {
            "touser": address,
            "template_id": request["template_id"],
            "data": request["data"],
            "miniprogram_state": self.miniprogram_state,
            "lang": request.get("lang") or "zh_CN",
        }
        if request.get("page"):
            payload["page"] = request["page"]
        stale: str | None = None
        for _ in range(2):
            try:
                token = await self.access_token(force=stale is not None, stale=stale)
                resp = await self.client.post(
                    f"{self.base_url}/cgi-bin/message/subscribe/send", params={"access_token": token}, json=payload
                )
            except TokenError as exc:
                return Outcome(
                    "throttled" if exc.code in WECHAT_THROTTLED else "transient" if exc.code == -1 else "permanent",
                    f"token errcode {exc.code}",
                )
            except (httpx.HTTPError, ValueError) as exc:
                return _http_failure(exc)
            code = _read_answer(resp, _errcode)
            if isinstance(code, Outcome):
                return code
            if code == 0:
                return Outcome("ok", provider_ref=resp.json().get("msgid") and str(resp.json()["msgid"]))
            if code in WECHAT_TOKEN_ERRORS:
                stale = token
                continue
            if code in WECHAT_THROTTLED:
                return Outcome("throttled", f"errcode {code}")
            if code in WECHAT_PERMANENT:
                return Outcome("permanent", f"errcode {code}: {WECHAT_PERMANENT[code]}", no_subscription=code == 43101)
            return Outcome("transient", f"errcode {code}")
        return Outcome("transient", "token refused twice")


class TokenError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"errcode {code}")
        self.code = code


# --- Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256) -------------------------------------------------


def tc3_authorization(
    secret_id: str, secret_key: str, host: str, body: bytes, timestamp: int, service: str = "sms"
) -> str:
    """The ``Authorization`` header of a Tencent Cloud API 3.0 JSON POST to ``/``."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\n"
        f"host:{host}\n\ncontent-type;host\n{hashlib.sha256(body).hexdigest()}"
    )
    scope = f"{day}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), day), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"


SMS_THROTTLED_PREFIXES = ("LimitExceeded.", "RequestLimitExceeded")
SMS_TRANSIENT_PREFIXES = ("InternalError", "ResourceUnavailable")


def e164(phone: str) -> str:
    digits = phone.strip().replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        return digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    return "+86" + digits


class TencentSms:
    name = "sms"

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        secret_id: str,
        secret_key: str,
        app_id: str,
        sign_name: str,
        region: str = "ap-guangzhou",
    ) -> None:
        self.client, self.url = client, base_url.rstrip("/") + "/"
        self.host = urlsplit(self.url).netloc
        self.secret_id, self.secret_key, self.app_id, self.sign_name, self.region = (
            secret_id,
            secret_key,
            app_id,
            sign_name,
            region,
        )

    async def send(self, address: str, request: dict[str, Any]) -> Outcome:
        body = json.dumps(
            {
                "PhoneNumberSet": [e164(address)],
                "SmsSdkAppId": self.app_id,
                "TemplateId": str(request["template_id"]),
                "SignName": self.sign_name,
                "TemplateParamSet": [str(p) for p in request.get("params", [])],
                "SessionContext": str(request.get("session", ""))[:500],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Host": self.host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11",
            "X-TC-Region": self.region,
            "X-TC-Timestamp": str(ts),
            "Authorization": tc3_authorization(self.secret_id, self.secret_key, self.host, body, ts),
        }
        try:
            resp = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _http_failure(exc)
        answer = _read_answer(resp, lambda body: body["Response"])
        if isinstance(answer, Outcome):
            return answer
        error = answer.get("Error")
        if error:
            return _sms_code(str(error.get("Code", "")))
        statuses = answer.get("SendStatusSet") or []
        if not statuses:
            return Outcome("transient", "no status")
        first = statuses[0]
        if first.get("Code") == "Ok":
            return Outcome("ok", provider_ref=str(first.get("SerialNo") or "") or None)
        return _sms_code(str(first.get("Code", "")))


def _sms_code(code: str) -> Outcome:
    if code.startswith(SMS_THROTTLED_PREFIXES):
        return Outcome("throttled", code)
    if code.startswith(SMS_TRANSIENT_PREFIXES) or code == "AuthFailure.SignatureExpire":
        return Outcome("transient", code)
    return Outcome("permanent", code)


# --- WeCom (企业微信) group robot -------------------------------------------------------------------------------


class WeComRobot:
    """``POST cgi-bin/webhook/send?key=K`` (markdown, ≤4096 bytes). ``address`` is the robot's scope (a
    community, or ``*`` for the district duty group); its key comes from settings at send time."""

    name = "wecom"

    def __init__(self, client: httpx.AsyncClient, base_url: str, keys: dict[str, str]) -> None:
        self.client, self.base_url, self.keys = client, base_url.rstrip("/"), keys

    async def send(self, address: str, request: dict[str, Any]) -> Outcome:
        key = self.keys.get(address) or self.keys.get("*")
        if not key:
            return Outcome("permanent", "no robot key for this scope")
        content = str(request.get("content", "")).encode()[:4096].decode(errors="ignore")
        try:
            resp = await self.client.post(
                f"{self.base_url}/cgi-bin/webhook/send",
                params={"key": key},
                json={"msgtype": "markdown", "markdown": {"content": content}},
            )
        except httpx.HTTPError as exc:
            return _http_failure(exc)
        code = _read_answer(resp, _errcode)
        if isinstance(code, Outcome):
            return code
        if code == 0:
            return Outcome("ok")
        if code == 45009:
            return Outcome("throttled", f"errcode {code}", retry_after=60.0)
        if code == 93000:
            return Outcome("permanent", "errcode 93000: invalid webhook url")
        return Outcome("transient" if code == -1 else "permanent", f"errcode {code}")
