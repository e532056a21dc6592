"""The roles apart against one process: hazard reports POSTed to points at a fixed rate (open loop) until the
issue is visible in issues (``bench.e2e``'s service mode), with points and issues each run as one process
(``--role all``) and then as three (``web``, ``relay``, ``consumer``). Same broker, same databases.

    python -m bench.roles [--rate 100] [--duration 8]

Prints one JSON document: per layout the hazard → issue latency, the events made visible per second, and the
CPU seconds all of the layout's processes spent per event (from /proc, over the run itself), and what each
process costs idle (cores, over 5 s before the run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import httpx

from bench.env import BenchEnv, Server, bench_env, run_python
from bench.suite import FIRE, install_issue_notify, seed_issue_catalogue, unique_body
from minsheng.localinfra.ports import free_port

IDLE_SECONDS = 5.0
LAYOUTS = {"one process": ("all",), "web + relay + consumer": ("web", "relay", "consumer")}


def start(env: BenchEnv, service: str, role: str) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "minsheng.cli", "serve", service, "--role", role, "--host", "127.0.0.1"]
    return env._spawn(f"{service}-{role}", [*argv, "--port", str(port)], env.service_env(), port)


def run_layout(env: BenchEnv, roles: tuple[str, ...], rate: float, duration: float) -> dict[str, Any]:
    servers = {(s, r): start(env, s, r) for s in ("points", "issues") for r in roles}
    try:
        for server in servers.values():
            env.wait_ready(server)
        web = servers[("points", roles[0])]
        token = env.token(["rider"], sub="bench-roles-rider")
        httpx.post(
            f"{web.url}/points/riders",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "骑手", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
            timeout=10,
        )
        spec = {
            "mode": "service",
            "rate": rate,
            "duration": duration,
            "warmup": 1.0,
            "port": web.port,
            "path": "/points/hazard-reports",
            "body": unique_body(FIRE),
            "headers": {"Authorization": f"Bearer {token}"},
            "issues_dsn": env.dsn_for("issues"),
            "points_dsn": env.dsn_for("points"),
        }
        idle0 = {k: s.cpu_seconds() for k, s in servers.items()}
        time.sleep(IDLE_SECONDS)  # what each process costs doing nothing (polls, probes): the floor per replica
        idle = {
            f"{s}-{r}": round((servers[(s, r)].cpu_seconds() - idle0[(s, r)]) / IDLE_SECONDS, 3) for s, r in servers
        }
        path = env.workdir / f"roles-{time.time_ns()}.json"
        path.write_text(json.dumps(spec))
        cpu0 = {k: s.cpu_seconds() for k, s in servers.items()}
        result: dict[str, Any] = run_python("bench.e2e", str(path), timeout=duration + 120)
        cpu = {f"{s}-{r}": round(servers[(s, r)].cpu_seconds() - cpu0[(s, r)], 2) for s, r in servers}
        events = max(1, result["sent"])
        return {
            "processes": len(servers),
            "sent": result["sent"],
            "visible": result["visible"],
            "visible_per_second": round(result["visible"] / duration, 1),
            "latency_ms": result["latency_ms"],
            "cpu_seconds": cpu,
            "idle_cores": idle,
            "cpu_ms_per_event": round(sum(cpu.values()) / events * 1e3, 2),
            "rss_mb": {f"{s}-{r}": round(server.rss_mb()) for (s, r), server in servers.items()},
        }
    finally:
        for server in servers.values():
            env.stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--duration", type=float, default=8)
    args = parser.parse_args()
    import asyncio

    out: dict[str, Any] = {"rate": args.rate, "duration_s": args.duration}
    with bench_env() as env:
        for name in ("points", "issues"):
            asyncio.run(env.migrate(name))
        asyncio.run(seed_issue_catalogue(env, "issues"))
        asyncio.run(install_issue_notify(env))
        env.wait_ready(env.start_service("identity"))
        for layout, roles in LAYOUTS.items():
            out[layout] = run_layout(env, roles, args.rate, args.duration)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
