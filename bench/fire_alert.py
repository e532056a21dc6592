"""An urgent fire → the on-duty staff's channels, as ``minsheng run --demo`` runs it (issue 16's done-when: the
alert reaches the duty group within 1 s).

``python -m bench.fire_alert [--fires 15] [--interval 1.0] [--timeout 30]``

The points, issues and notify services in one process as ``minsheng run --demo`` builds them (embedded: SQLite
files in a temporary directory, the in-process bus, the relays, consumers and notify's sender loop at work,
each service's demo seed loaded, the provider stand-ins on real HTTP, notify's default settings — the real
WeCom robot limit included). A rider registers (``POST /points/riders``) and reports fires in Yunxing
(``POST /points/hazard-reports``, the in-process ASGI client, a rider's token signed with the process's key
ring). Each fire becomes an urgent issue; notify sends the duty group's WeCom robot (the stand-in's
``standin-duty-robot``) one alert and, the demo's duty shift for Yunxing having no WeChat subscription, the
person on duty one text (SMS template 1900003).

Per fire: POST start → the WeCom stand-in received the alert (the figure), and POST start → the stand-in
received the on-duty SMS (beside it). One fire at a time: the next is posted ``--interval`` s after the previous
one, or once both its alerts arrived if that is later, so each arrival belongs to one fire. Every fire is at a
place of its own (≈ 550 m apart: points merges a category's reports within 200 m and 30 minutes, issues within
100 m and 72 h) with a description of its own. A warm-up fire goes first and is not counted (first statements,
first connections). The WeCom robot allows 20 messages a minute with a burst of 20: warm-up + ``--fires`` stays
within the burst. A fire whose alerts do not arrive within ``--timeout`` s ends the run (later arrivals could
not be told apart); the answer then counts fewer received than posted. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import percentile

SERVICES = ("points", "issues", "notify")
RIDER_SUB = "bench-fire-rider"
DUTY_ROBOT = "standin-duty-robot"
ON_DUTY_TEMPLATE = "1900003"
URGENT = "【紧急】"  # the duty group's alert (rule urgent_issue_duty); the daily digest goes to the same robot
# Near the Gangcheng theatre, in Yunxing (the demo's duty shift); each fire ≈ 556 m north of the one before.
FIRE: dict[str, Any] = {
    "category": "fire",
    "latitude": 40.0134,
    "longitude": 112.7032,
    "community": "yunxing",
    "compound": "yuntaiyuan",
}
STEP_DEGREES = 0.005


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p99_ms": round(percentile(values, 0.99), 1),
        "max_ms": round(max(values), 1),
    }


def fire(n: int, total: int) -> dict[str, Any]:
    """Fire ``n`` (0 = the warm-up): a place and a description of its own."""
    return {
        **FIRE,
        "description": f"Bench fire {n} of {total}: rubbish bin on fire near the Gangcheng theatre",
        "latitude": round(FIRE["latitude"] + STEP_DEGREES * (n + 1), 6),
        "address": f"Gangcheng theatre, {n + 1} blocks north",
    }


async def run(fires: int = 15, interval: float = 1.0, patience: float = 30.0) -> dict[str, Any]:
    import httpx
    from sqlmodel import select

    from minsheng.platform.auth import mint_token
    from minsheng.platform.tokens import KeyRing
    from minsheng.runner import build_app
    from minsheng.settings import Settings
    from services.notify import config
    from services.notify.demo import DEMO_DUTY_COMMUNITY, DEMO_DUTY_PHONE
    from services.notify.models import DutyShift
    from services.notify.state import NOTIFIERS

    burst = config.get().burst.get("wecom", 0)
    if fires < 1 or fires + 1 > burst:
        raise ValueError(f"--fires must be 1–{burst - 1}: the WeCom robot's burst is {burst}, one is the warm-up")

    with tempfile.TemporaryDirectory(prefix="msbench-fire-") as tmp:
        settings = Settings(mode="embedded", data_dir=Path(tmp))
        keyring = KeyRing.ephemeral()  # no identity service here: the services verify tokens with this ring
        app = build_app(settings, SERVICES, demo=True, freeze_gc=True, keyring=keyring)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=30) as client,
        ):
            runtime = app.state.runtimes["notify"]
            notifier = NOTIFIERS[runtime.db]
            assert notifier.standin is not None
            got = notifier.standin.state.received
            async with runtime.uow() as uow:
                shift = await uow.session.execute(
                    select(DutyShift.id).where(DutyShift.community == DEMO_DUTY_COMMUNITY).limit(1)
                )
                on_duty = shift.first() is not None

            def alerts() -> list[dict[str, Any]]:
                return [
                    m
                    for m in got["wecom"]
                    if m.get("key") == DUTY_ROBOT and m.get("markdown", {}).get("content", "").startswith(URGENT)
                ]

            def texts() -> list[dict[str, Any]]:
                return [
                    m
                    for m in got["sms"]
                    if m.get("phone") == f"+86{DEMO_DUTY_PHONE}" and m.get("TemplateId") == ON_DUTY_TEMPLATE
                ]

            def arrived(seen_alerts: int, seen_texts: int) -> bool:
                return len(alerts()) > seen_alerts and (not on_duty or len(texts()) > seen_texts)

            token = mint_token(keyring, settings, RIDER_SUB, ["rider"], [])
            rider = {"Authorization": f"Bearer {token}"}
            r = await client.post(
                "/points/riders",
                headers=rider,
                json={"name": "樊伟明", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
            )
            if r.status_code != 201:
                raise RuntimeError(f"rider registration → {r.status_code} {r.text[:300]}")

            wecom_ms: list[float] = []
            sms_ms: list[float] = []
            post_ms: list[float] = []
            posted = 0
            previous = 0.0
            for n in range(fires + 1):
                await asyncio.sleep(max(0.0, previous + interval - time.perf_counter()) if n else 0.0)
                seen_alerts, seen_texts = len(alerts()), len(texts())
                previous, started = time.perf_counter(), time.time()
                r = await client.post("/points/hazard-reports", headers=rider, json=fire(n, fires))
                answered = time.time()
                if r.status_code != 201:
                    raise RuntimeError(f"fire {n} → {r.status_code} {r.text[:300]}")
                report = r.json()
                if not report["urgent"] or report.get("duplicate_of"):
                    raise RuntimeError(f"fire {n} was not a new urgent report: {report}")
                deadline = time.perf_counter() + patience
                while not arrived(seen_alerts, seen_texts) and time.perf_counter() < deadline:  # noqa: ASYNC110 - a stand-in's list
                    await asyncio.sleep(0.005)
                alert = alerts()[seen_alerts] if len(alerts()) > seen_alerts else None
                text = texts()[seen_texts] if len(texts()) > seen_texts else None
                if n == 0:  # the warm-up: not counted
                    if alert is None or (on_duty and text is None):
                        raise RuntimeError(f"the warm-up fire's alerts did not arrive within {patience} s")
                    continue
                posted += 1
                post_ms.append((answered - started) * 1000)
                if alert is not None:
                    wecom_ms.append((alert["at"] - started) * 1000)
                if text is not None:
                    sms_ms.append((text["at"] - started) * 1000)
                if alert is None or (on_duty and text is None):
                    break  # what arrives later could not be told from the next fire's
    wecom: dict[str, Any] = _summary(wecom_ms) or {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "figure": "urgent fire → the duty group's WeCom robot (minsheng run --demo: points, issues, notify)",
        "backend": "sqlite",
        "services": list(SERVICES),
        "fires": fires,
        "posted": posted,
        "warmup_fires": 1,
        "interval_s": interval,
        "received": len(wecom_ms),
        **wecom,
        "latencies_ms": [round(v, 1) for v in wecom_ms],
        "on_duty_sms": on_duty,
        "sms_received": len(sms_ms),
        "sms": _summary(sms_ms),
        "sms_latencies_ms": [round(v, 1) for v in sms_ms],
        "post": _summary(post_ms),
        "target_ms": 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fires", type=int, default=15, help="fires measured (after one warm-up fire)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one fire and the next")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a fire's alerts may take at most")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.fires, args.interval, args.timeout)), ensure_ascii=False))


if __name__ == "__main__":
    main()
