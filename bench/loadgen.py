"""The load generator: a small HTTP/1.1 keep-alive client on raw asyncio streams (uvloop when available),
run in its own process beside the server under test.

Why not wrk: it has no fixed-rate mode (the latency figures need an open-loop generator that does not slow
down when the server does — "coordinated omission"), and wrk2 is not packaged. Why not httpx/aiohttp: they
cost 5-10x more client CPU per request than this, and on a 2-core machine the client shares the CPU with
the server. The client CPU per request is recorded with every result so it can be checked.

Two modes:
- ``closed``: ``connections`` workers each send a request and wait for the answer, as fast as possible
  (throughput; latency is then mostly queueing);
- ``open``: requests are *scheduled* at a fixed ``rate``; latency is measured from the scheduled time, so a
  stalled server shows up in the percentiles instead of silently lowering the rate.

Run: ``python -m bench.loadgen SPEC.json`` prints a JSON result. A spec is::

    {"host": "127.0.0.1", "port": 8000, "mode": "closed", "connections": 16, "duration": 10, "warmup": 2,
     "rate": 200, "requests": [{"method": "GET", "path": "/x", "headers": {...}, "body": "..."}]}
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any


def build_request(
    host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str | bytes | None = None
) -> bytes:
    data = body.encode() if isinstance(body, str) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if data or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(data)}")
        if not any(k.lower() == "content-type" for k in (headers or {})):
            lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


IDLE_REOPEN_S = 3.0  # uvicorn closes keep-alive connections idle for 5 s: reopen ours before that

UNIQUE_TOKENS = (b"__N__", b"__LAT__", b"__LON__")


def unique_place(n: int) -> tuple[float, float]:
    """A different place for every n (a grid ~1 km apart): no two requests look like duplicates."""
    return 20.0 + (n // 2000) % 3000 * 0.01, 80.0 + (n % 2000) * 0.02


class Template:
    """A request whose body has ``__N__`` / ``__LAT__`` / ``__LON__`` in it: filled per request with a counter
    and a unique place (the services refuse a report of the same thing at the same place twice)."""

    counter = 0

    def __init__(self, raw: bytes) -> None:
        head, _, body = raw.partition(b"\r\n\r\n")
        self.head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length"))
        self.body = body

    def render(self) -> bytes:
        Template.counter += 1
        n = Template.counter + Template.base
        lat, lon = unique_place(n)
        body = (
            self.body.replace(b"__N__", str(n).encode())
            .replace(b"__LAT__", f"{lat:.5f}".encode())
            .replace(b"__LON__", f"{lon:.5f}".encode())
        )
        return self.head + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body

    base = 0


def requests_cycle(raws: list[bytes]) -> Iterator[bytes]:
    items: list[bytes | Template] = [Template(r) if any(t in r for t in UNIQUE_TOKENS) else r for r in raws]
    for item in itertools.cycle(items):
        yield item.render() if isinstance(item, Template) else item


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it are strictly sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.perf_counter()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.last_used = time.perf_counter()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            return status, b"".join(parts)
        return status, (await self.reader.readexactly(length)) if length > 0 else b""

    def close(self) -> None:
        self.writer.close()


@dataclass
class Recorder:
    measuring: bool = False
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record(self, latency: float, status: int, body: bytes) -> None:
        if not self.measuring:
            return
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400 and len(self.error_samples) < 3:
            self.error_samples.append(f"{status}: {body[:300].decode(errors='replace')}")

    def fail(self, exc: BaseException) -> None:
        if self.measuring:
            self.errors += 1
            if len(self.error_samples) < 3:
                self.error_samples.append(repr(exc)[:300])


def percentiles(values: list[float]) -> dict[str, float]:
    """Latency summary in milliseconds (nearest-rank percentiles)."""
    if not values:
        return {}
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))] * 1000

    return {
        "p50": q(50),
        "p90": q(90),
        "p99": q(99),
        "p999": q(99.9),
        "max": s[-1] * 1000,
        "mean": sum(s) / len(s) * 1000,
    }


def percentile(values: list[float], q: float) -> float:
    """The value at rank ``q`` (0–1) of ``values``, rounded to the nearest rank, in their own unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_closed(spec: dict[str, Any], raws: list[bytes], rec: Recorder) -> float:
    host, port = spec["host"], spec["port"]
    cycle = requests_cycle(raws)
    stop_at = 0.0
    asyncio.get_running_loop()

    async def worker() -> None:
        conn = await Connection.open(host, port)
        try:
            while time.perf_counter() < stop_at:
                raw = next(cycle)
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    rec.fail(exc)
                    conn.close()
                    conn = await Connection.open(host, port)
                    continue
                rec.record(time.perf_counter() - t0, status, body)
        finally:
            conn.close()

    stop_at = time.perf_counter() + spec.get("warmup", 1) + spec["duration"]
    tasks = [asyncio.create_task(worker()) for _ in range(spec.get("connections", 16))]
    await asyncio.sleep(spec.get("warmup", 1))
    rec.measuring = True
    t_start = time.perf_counter()
    await asyncio.gather(*tasks)
    rec.measuring = False
    return time.perf_counter() - t_start


async def fixed_rate(rate: float, warmup: float, duration: float) -> AsyncIterator[tuple[int, float, bool]]:
    """The open-loop schedule: ``(i, due, measured)`` for each of ``(warmup + duration) * rate`` sends, yielded
    when it is due (``start + i / rate``) whatever happened to the ones before; ``measured``: past the warm-up."""
    start = time.perf_counter() + 0.05
    total, first = int((warmup + duration) * rate), int(warmup * rate)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i, due, i >= first


async def run_open(spec: dict[str, Any], raws: list[bytes], rec: Recorder) -> float:
    """Fixed-rate: request i is due at start + i/rate, whatever happened to the previous ones."""
    host, port, rate = spec["host"], spec["port"], float(spec["rate"])
    max_conns = spec.get("connections", 64)
    idle: list[Connection] = [await Connection.open(host, port) for _ in range(min(8, max_conns))]
    opened = len(idle)
    freed = asyncio.Event()
    cycle = requests_cycle(raws)
    asyncio.get_running_loop()
    warmup, duration = spec.get("warmup", 1), spec["duration"]
    inflight: set[asyncio.Task[None]] = set()

    async def one(raw: bytes, due: float, measured: bool) -> None:
        nonlocal opened
        while not idle and opened >= max_conns:
            freed.clear()
            await freed.wait()
        if idle:
            conn = idle.pop()
            if time.perf_counter() - conn.last_used > IDLE_REOPEN_S:  # the server may have closed it by now
                conn.close()
                conn = await Connection.open(host, port)
        else:
            opened += 1
            conn = await Connection.open(host, port)
        try:
            status, body = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if measured:
                rec.errors += 1
                if len(rec.error_samples) < 3:
                    rec.error_samples.append(repr(exc)[:300])
            conn.close()
            opened -= 1
            freed.set()
            return
        if measured:
            rec.latencies.append(time.perf_counter() - due)
            rec.statuses[status] = rec.statuses.get(status, 0) + 1
            if status >= 400 and len(rec.error_samples) < 3:
                rec.error_samples.append(f"{status}: {body[:300].decode(errors='replace')}")
        idle.append(conn)
        freed.set()

    async for _, due, measured in fixed_rate(rate, warmup, duration):
        task = asyncio.create_task(one(next(cycle), due, measured))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=30)
    for conn in idle:
        conn.close()
    return duration


def summarize(spec: dict[str, Any], rec: Recorder, elapsed: float, cpu: float) -> dict[str, Any]:
    n = len(rec.latencies)
    ok = sum(c for s, c in rec.statuses.items() if s < 400)
    return {
        "mode": spec.get("mode", "closed"),
        "connections": spec.get("connections"),
        "rate": spec.get("rate"),
        "duration_s": elapsed,
        "requests": n,
        "ok": ok,
        "errors": rec.errors + (n - ok),
        "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
        "rps": ok / elapsed if elapsed else 0.0,
        "latency_ms": percentiles(rec.latencies),
        "client_cpu_us_per_request": cpu / n * 1e6 if n else None,
        "error_samples": rec.error_samples,
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    raws = [
        build_request(spec["host"], spec["port"], r.get("method", "GET"), r["path"], r.get("headers"), r.get("body"))
        for r in spec["requests"]
    ]
    rec = Recorder()
    Template.base = int(spec.get("unique_base", time.time() * 1000) % 10**9)  # new places every run
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    mode = spec.get("mode", "closed")
    elapsed = await (run_open(spec, raws, rec) if mode == "open" else run_closed(spec, raws, rec))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return summarize(spec, rec, elapsed, cpu)


def install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        pass


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    with open(args[0]) as f:
        spec = json.load(f)
    install_uvloop()
    result = asyncio.run(run(spec))
    out = json.dumps(result)
    if len(args) > 1:
        with open(args[1], "w") as f:
            f.write(out)
    else:
        sys.stdout.write(out + os.linesep)


if __name__ == "__main__":
    main()
