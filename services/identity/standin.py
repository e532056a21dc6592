"""A local stand-in for the WeChat API — a development tool, not WeChat.

It speaks the real paths and response shapes (``sns/jscode2session``, ``cgi-bin/stable_token``,
``wxa/business/getuserphonenumber``; errors as HTTP 200 ``{"errcode", "errmsg"}``) so the adapter is exercised
over real HTTP. The embedded mode starts it on a loopback port when no WeChat API base is configured; the
distributed mode refuses it unless ``MINSHENG_IDENTITY_WECHAT_STANDIN=true``.

Codes (what the mini-program's ``wx.login()`` / ``getPhoneNumber`` would return):
- the openid is derived from the code up to its first ``.``: ``zhao`` and ``zhao.2`` are the same person.
  A code with a ``.`` is single use (40163 the second time), like a real one; a plain code can be reused.
- ``invalid-…`` → 40029, ``risky-…`` → 40226, ``throttled-…`` → 45011, ``busy-…`` → -1 (system busy);
  ``union-…`` also returns a unionid.
- phone codes: ``phone-13812345678`` gives that number; any other code a number derived from it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request

from minsheng.platform.tasks import within

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    42001: "access_token expired",
    45011: "api minute-quota reach limit mustslower retry next minute",
}
_PREFIX_ERRORS = {"invalid-": 40029, "risky-": 40226, "throttled-": 45011, "busy-": -1}


def _error(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{ERRMSG.get(code, 'error')}, rid: {secrets.token_hex(4)}"}


def openid_for(appid: str, code: str) -> str:
    person = code.split(".", 1)[0]
    digest = hashlib.sha256(f"{appid}:{person}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def phone_for(code: str) -> str:
    if code.startswith("phone-") and code[6:].isdigit() and len(code) == 17:
        return code[6:]
    return "139" + str(int(hashlib.sha256(code.encode()).hexdigest(), 16))[:8]


def create_standin(appid: str, secret: str) -> FastAPI:
    app = FastAPI(title="WeChat API stand-in (development only)", docs_url=None, redoc_url=None)
    used: set[str] = set()
    tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
    current: list[str] = []
    app.state.calls = {"jscode2session": 0, "stable_token": 0, "getuserphonenumber": 0}

    def check_code(code: str) -> int:
        for prefix, errcode in _PREFIX_ERRORS.items():
            if code.startswith(prefix):
                return errcode
        if not code:
            return 40029
        if "." in code:
            if code in used:
                return 40163
            used.add(code)
        return 0

    @app.get("/sns/jscode2session")
    async def jscode2session(request: Request) -> dict[str, Any]:
        q = request.query_params
        app.state.calls["jscode2session"] += 1
        if q.get("appid") != appid:
            return _error(40013)
        if q.get("secret") != secret:
            return _error(40125)
        if q.get("grant_type") != "authorization_code":
            return _error(40002)
        code = q.get("js_code", "")
        errcode = check_code(code)
        if errcode:
            return _error(errcode)
        body: dict[str, Any] = {
            "openid": openid_for(appid, code),
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
        }
        if code.startswith("union-"):
            body["unionid"] = "u" + openid_for("open-platform", code)[1:]
        return body

    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> dict[str, Any]:
        app.state.calls["stable_token"] += 1
        body = await request.json()
        if body.get("grant_type") != "client_credential":
            return _error(40002)
        if body.get("appid") != appid:
            return _error(40013)
        if body.get("secret") != secret:
            return _error(40125)
        now = time.monotonic()
        if body.get("force_refresh") or not current or tokens.get(current[-1], 0) - now < 300:
            if body.get("force_refresh"):
                tokens.clear()
            token = "standin_" + secrets.token_urlsafe(48)
            tokens[token] = now + 7200
            current.append(token)
        token = current[-1]
        return {"access_token": token, "expires_in": int(tokens[token] - now)}

    @app.post("/wxa/business/getuserphonenumber")
    async def getuserphonenumber(request: Request) -> dict[str, Any]:
        app.state.calls["getuserphonenumber"] += 1
        token = request.query_params.get("access_token", "")
        expiry = tokens.get(token)
        if expiry is None:
            return _error(40001)
        if expiry < time.monotonic():
            return _error(42001)
        code = str((await request.json()).get("code", ""))
        errcode = check_code(code)
        if errcode:
            return _error(errcode)
        phone = phone_for(code)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": 86,
                "watermark": {"timestamp": int(time.time()), "appid": appid},
            },
        }

    return app


class StandinServer:
    """The stand-in on a loopback port of its own, in this process (started on first use)."""

    def __init__(self, appid: str, secret: str) -> None:
        self.app = create_standin(appid, secret)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.base_url = ""

    async def start(self) -> str:
        async with self._lock:
            if self._task is not None:
                return self.base_url
            import uvicorn

            class Server(uvicorn.Server):
                @contextlib.contextmanager
                def capture_signals(self) -> Iterator[None]:  # the host process owns the signals
                    yield

            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            self._server = Server(uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off"))
            self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="wechat-standin")
            for _ in range(500):
                if self._server.started or self._task.done():
                    break
                await asyncio.sleep(0.01)
            if not self._server.started:
                raise RuntimeError("the WeChat stand-in did not start")
            self.base_url = f"http://127.0.0.1:{port}"
            return self.base_url

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await within(5, self._task)
        self._task = None
