"""Identity figures: server CPU per WeChat login (beyond the WeChat call), per refresh, argon2id cost, and
what token verification adds to a request (cached and first time). In-process, on SQLite (embedded) or on
PostgreSQL when a database URL template is given.

    python -m bench.identity [--logins 300] [--database-url postgresql+asyncpg://…/x_{service}]

Prints one JSON document. CPU is this process's (time.process_time): it includes the test client's share,
so the figures are upper bounds of the server's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


async def run(logins: int, database_url: str) -> dict[str, Any]:
    from minsheng.platform.auth import decode_token, make_verifier, mint_token
    from minsheng.platform.tokens import KeyRing
    from minsheng.settings import Settings
    from services.identity import config, passwords
    from services.identity.wechat import Session

    out: dict[str, Any] = {}
    settings = Settings(
        mode="embedded", data_dir=Path(tempfile.mkdtemp(prefix="msbench-id-")), database_url=database_url
    )
    with config.override(signin_rate_per_second=1e9, signin_burst=10**9):
        async with _identity_alone(settings) as system:
            rt = system.runtime("identity")

            class NoWechat:  # the WeChat call itself is not ours to count
                appid = "wx-bench"

                async def code2session(self, code: str) -> Session:
                    return Session("o" + code.ljust(27, "x"), "c2Vzc2lvbi1rZXk=", None)

                async def close(self) -> None: ...

            rt.state["wechat"] = NoWechat()
            for i in range(20):  # warm up
                await system.client.post("/identity/wechat/login", json={"code": f"warm{i}"})
            c0 = time.process_time()
            for _ in range(logins):  # the same stack (client, middleware, routing) for a trivial GET
                await system.client.get("/identity/.well-known/jwks.json")
            baseline = (time.process_time() - c0) / logins * 1e3
            out["baseline_request_cpu_ms"] = round(baseline, 3)
            c0 = time.process_time()
            for i in range(logins):  # first sign-ins: the accounts are created (and their events written)
                r = await system.client.post("/identity/wechat/login", json={"code": f"bench{i}"})
                assert r.status_code == 200, r.text
            out["wechat_first_login_cpu_beyond_baseline_ms"] = round(
                (time.process_time() - c0) / logins * 1e3 - baseline, 3
            )
            refresh = []
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(logins):  # the figure: returning users (the everyday sign-in)
                r = await system.client.post("/identity/wechat/login", json={"code": f"bench{i}"})
                assert r.status_code == 200, r.text
                refresh.append(r.json()["refresh_token"])
            c1, t1 = time.process_time(), time.perf_counter()
            out["wechat_login_cpu_ms"] = round((c1 - c0) / logins * 1e3, 3)
            out["wechat_login_wall_ms"] = round((t1 - t0) / logins * 1e3, 3)
            out["wechat_login_cpu_beyond_baseline_ms"] = round(out["wechat_login_cpu_ms"] - baseline, 3)
            c0 = time.process_time()
            for token in refresh:
                r = await system.client.post("/identity/refresh", json={"refresh_token": token})
                assert r.status_code == 200
            out["refresh_cpu_ms"] = round((time.process_time() - c0) / logins * 1e3, 3)
            out["database"] = "postgresql" if database_url else "sqlite"

    c = config.get()
    n = 5
    c0, t0 = time.process_time(), time.perf_counter()
    stored = ""
    for _ in range(n):
        stored = passwords.hash_password("correct horse battery staple")
    out["argon2id_hash_ms"] = round((time.perf_counter() - t0) / n * 1e3, 1)
    t0 = time.perf_counter()
    for _ in range(n):
        passwords.verify_password(stored, "correct horse battery staple")
    out["argon2id_verify_ms"] = round((time.perf_counter() - t0) / n * 1e3, 1)
    out["argon2id_params"] = {
        "time_cost": c.argon2_time_cost,
        "memory_kib": c.argon2_memory_kib,
        "parallelism": c.argon2_parallelism,
    }

    ring = KeyRing.ephemeral()
    plain = Settings(mode="embedded")
    verifier = make_verifier(ring, plain)
    tokens = [mint_token(ring, plain, f"user-{i}", ["resident"], ["community:yunxing"]) for i in range(2000)]
    t0 = time.perf_counter()
    for tok in tokens:
        await decode_token(verifier, tok)
    out["verify_first_time_us"] = round((time.perf_counter() - t0) / len(tokens) * 1e6, 1)
    rounds = 50
    t0 = time.perf_counter()
    for _ in range(rounds):
        for tok in tokens:
            await decode_token(verifier, tok)
    out["verify_cached_us"] = round((time.perf_counter() - t0) / (rounds * len(tokens)) * 1e6, 2)
    t0 = time.perf_counter()
    for i in range(len(tokens)):
        mint_token(ring, plain, f"user-{i}", ["resident"])
    out["sign_us"] = round((time.perf_counter() - t0) / len(tokens) * 1e6, 1)

    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.logins, args.database_url))))


class _System:
    def __init__(self, app: Any, client: Any) -> None:
        self.app, self.client = app, client

    def runtime(self, name: str) -> Any:
        return self.app.state.runtimes[name]


@contextlib.asynccontextmanager
async def _identity_alone(settings: Any) -> AsyncIterator[_System]:
    """The identity service alone in this process, called in-process over ASGI (no network in the figure)."""
    import httpx

    from minsheng.runner import build_app

    app = build_app(settings, ["identity"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
    ):
        yield _System(app, client)


if __name__ == "__main__":
    main()
