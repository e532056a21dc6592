"""Local stand-ins for the providers, speaking their wire formats over real HTTP: WeChat (stable_token,
subscribe/send), Tencent Cloud SMS (SendSms with a checked TC3 signature) and the WeCom group robot.

``bin/run`` and the tests use them; the distributed mode refuses them unless ``MINSHENG_NOTIFY_STANDIN=true``.
Control endpoints under ``/_control`` make a provider fail (HTTP 503 outage) or throttle (its real throttle
code) for a while, expire the WeChat tokens at once, and list what was received.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from minsheng.platform.tasks import within
from services.notify.channels import tc3_authorization
from services.notify.rules import field_type

STANDIN_APPID = "wx-standin-appid"
STANDIN_SECRET = "standin-secret"
STANDIN_SMS_ID = "AKIDstandin"
STANDIN_SMS_KEY = "standin-sms-key"
STANDIN_SMS_APP = "1400000000"
_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phrase": 5,
    "phone_number": 17,
    "car_number": 8,
    "name": 20,
}


@dataclass
class Fault:
    mode: str  # outage | throttle
    until: float


@dataclass
class StandinState:
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"wechat": [], "sms": [], "wecom": []})
    refused: dict[str, int] = field(default_factory=lambda: {"wechat": 0, "sms": 0, "wecom": 0})
    faults: dict[str, Fault] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token → expiry (monotonic)
    token_calls: int = 0
    robot_keys: set[str] = field(default_factory=set)  # empty = any key works

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the next send answers 42001)."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    def fault(self, channel: str) -> str | None:
        f = self.faults.get(channel)
        if f is None:
            return None
        if time.monotonic() >= f.until:
            del self.faults[channel]
            return None
        return f.mode


def _wechat_error(code: int, msg: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": f"{msg} rid: {secrets.token_hex(4)}"})


def create_standin_app(state: StandinState | None = None) -> FastAPI:
    app = FastAPI(title="Minsheng provider stand-ins", docs_url=None, redoc_url=None, openapi_url=None)
    st = app.state.standin = state or StandinState()

    # --- WeChat -----------------------------------------------------------------------------------------------
    @app.post("/wechat/cgi-bin/stable_token")
    async def stable_token(request: Request) -> JSONResponse:
        body = await request.json()
        if st.fault("wechat") == "outage":
            return JSONResponse({"errmsg": "service unavailable"}, status_code=503)
        if body.get("appid") != STANDIN_APPID:
            return _wechat_error(40013, "invalid appid")
        if body.get("secret") != STANDIN_SECRET:
            return _wechat_error(40125, "invalid appsecret")
        st.token_calls += 1
        live = [t for t, exp in st.tokens.items() if exp > time.monotonic()]
        token = live[-1] if live and not body.get("force_refresh") else secrets.token_urlsafe(48)
        st.tokens.setdefault(token, time.monotonic() + 7200)
        return JSONResponse({"access_token": token, "expires_in": int(st.tokens[token] - time.monotonic())})

    @app.post("/wechat/cgi-bin/message/subscribe/send")
    async def subscribe_send(request: Request) -> JSONResponse:
        mode = st.fault("wechat")
        if mode == "outage":
            st.refused["wechat"] += 1
            return JSONResponse({"errmsg": "service unavailable"}, status_code=503)
        token = request.query_params.get("access_token", "")
        if token not in st.tokens:
            st.refused["wechat"] += 1
            return _wechat_error(40001, "invalid credential, access_token is invalid or not latest")
        if st.tokens[token] <= time.monotonic():
            st.refused["wechat"] += 1
            return _wechat_error(42001, "access_token expired")
        if mode == "throttle":
            st.refused["wechat"] += 1
            return _wechat_error(45009, "reach max api daily quota limit")
        body = await request.json()
        if not isinstance(body.get("touser"), str) or not re.fullmatch(r"[A-Za-z0-9_-]{6,64}", body["touser"]):
            return _wechat_error(40003, "invalid openid")
        if not body.get("template_id"):
            return _wechat_error(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            return _wechat_error(47003, "argument invalid! data is empty")
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            limit = _LIMITS.get(field_type(key))
            if not isinstance(value, str) or (limit is not None and len(value) > limit):
                return _wechat_error(47003, f"argument invalid! data.{key}.value invalid")
        if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
            return _wechat_error(47003, "argument invalid! miniprogram_state")
        st.received["wechat"].append({**body, "at": time.time()})
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": len(st.received["wechat"])})

    # --- WeCom group robot -------------------------------------------------------------------------------------
    @app.post("/wecom/cgi-bin/webhook/send")
    async def webhook_send(request: Request) -> JSONResponse:
        mode = st.fault("wecom")
        if mode == "outage":
            st.refused["wecom"] += 1
            return JSONResponse({"errmsg": "service unavailable"}, status_code=503)
        key = request.query_params.get("key", "")
        if not key or (st.robot_keys and key not in st.robot_keys):
            return _wechat_error(93000, "invalid webhook url, hint: [key invalid]")
        if mode == "throttle":
            st.refused["wecom"] += 1
            return _wechat_error(45009, "api freq out of limit")
        body = await request.json()
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown") or not isinstance(body.get(msgtype), dict):
            return _wechat_error(40008, "invalid message type")
        content = body[msgtype].get("content", "")
        if len(content.encode()) > (2048 if msgtype == "text" else 4096):
            return _wechat_error(40058, "content exceed max length")
        st.received["wecom"].append({"key": key, **body, "at": time.time()})
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    # --- Tencent Cloud SMS --------------------------------------------------------------------------------------
    @app.post("/sms/")
    async def send_sms(request: Request) -> JSONResponse:
        raw = await request.body()
        request_id = secrets.token_hex(16)

        def error(code: str, message: str) -> JSONResponse:
            return JSONResponse({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}})

        mode = st.fault("sms")
        if mode == "outage":
            st.refused["sms"] += 1
            return JSONResponse({"message": "service unavailable"}, status_code=503)
        if request.headers.get("x-tc-action") != "SendSms" or request.headers.get("x-tc-version") != "2021-01-11":
            return error("InvalidAction", "action or version invalid")
        try:
            ts = int(request.headers.get("x-tc-timestamp", ""))
        except ValueError:
            return error("MissingParameter", "X-TC-Timestamp")
        if abs(time.time() - ts) > 300:
            return error("AuthFailure.SignatureExpire", "signature expired")
        expected = tc3_authorization(STANDIN_SMS_ID, STANDIN_SMS_KEY, request.headers.get("host", ""), raw, ts)
        if not hmac.compare_digest(expected, request.headers.get("authorization", "")):
            return error("AuthFailure.SignatureFailure", "the provided credentials could not be validated")
        body = await request.json()
        phones = body.get("PhoneNumberSet") or []
        if body.get("SmsSdkAppId") != STANDIN_SMS_APP or not body.get("TemplateId") or not body.get("SignName"):
            return error("InvalidParameterValue", "SmsSdkAppId, TemplateId and SignName are required")
        statuses = []
        for phone in phones:
            base = {"PhoneNumber": phone, "SessionContext": body.get("SessionContext", ""), "IsoCode": "CN"}
            if mode == "throttle":
                st.refused["sms"] += 1
                statuses.append(
                    {
                        **base,
                        "SerialNo": "",
                        "Fee": 0,
                        "Code": "LimitExceeded.PhoneNumberOneHourLimit",
                        "Message": "the number of sms messages sent from a single mobile number "
                        "within 1 hour exceeds the upper limit",
                    }
                )
            elif not re.fullmatch(r"\+861[3-9]\d{9}", phone):
                statuses.append(
                    {
                        **base,
                        "SerialNo": "",
                        "Fee": 0,
                        "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                        "Message": "incorrect phone number",
                    }
                )
            else:
                st.received["sms"].append({"phone": phone, **body, "at": time.time()})
                statuses.append(
                    {
                        **base,
                        "SerialNo": f"5000:{secrets.token_hex(8)}",
                        "Fee": 1,
                        "Code": "Ok",
                        "Message": "send success",
                    }
                )
        return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})

    # --- control -------------------------------------------------------------------------------------------------
    @app.post("/_control/fault")
    async def set_fault(body: dict[str, Any]) -> dict[str, str]:
        if body["mode"] == "expire_tokens":
            st.expire_tokens()
            return {"status": "ok"}
        st.faults[body["channel"]] = Fault(body["mode"], time.monotonic() + float(body.get("seconds", 30)))
        return {"status": "ok"}

    @app.get("/_control/received")
    async def received() -> dict[str, Any]:
        return {"received": st.received, "refused": st.refused, "token_calls": st.token_calls}

    @app.post("/_control/reset")
    async def reset() -> dict[str, str]:
        for v in st.received.values():
            v.clear()
        st.faults.clear()
        return {"status": "ok"}

    return app


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process's main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None


@dataclass
class RunningStandin:
    state: StandinState
    base_url: str


@contextlib.asynccontextmanager
async def serve_standin(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningStandin]:
    app = create_standin_app()
    server = _QuietServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(), name="notify-standin")
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise RuntimeError("the provider stand-in did not start")
    sock = server.servers[0].sockets[0].getsockname()
    try:
        yield RunningStandin(app.state.standin, f"http://{host}:{sock[1]}")
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await within(5, task)
