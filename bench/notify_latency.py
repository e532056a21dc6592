"""Event → message accepted by the provider (stand-in), at a fixed event rate.

``python -m bench.notify_latency [--rate 100] [--seconds 10] [--warmup 1] [--database-url
postgresql+asyncpg://…/{service}] [--baseline]``

The notify service runs as in ``minsheng run`` (its consumer, sender loop and the provider stand-ins on real
HTTP); absence alerts for phone-only family members (one SMS each) are put on the in-process bus at the given
rate, each stamped with its CloudEvent time. The figure is the stand-in's receive time minus the event time:
consumer + fan-out transaction + the sender's wake-up, claim, HTTP call. A warm-up of ``--warmup`` seconds at
the same rate goes first and is not counted (the first statements compile, the first connections open): the
figure is the steady state. Prints one JSON object.

``--baseline``: the provider call alone, at the same rate: the same SMS adapter (TC3-signed ``SendSms``) posting
straight to the same stand-in, one task per event, no bus, no database, no queue. The figure is the same
(receive time minus the moment the event was due).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any
from uuid import uuid4

import sqlalchemy as sa

from bench.loadgen import percentile
from minsheng.contracts.canteen import AbsenceAlert, FamilyContact
from minsheng.platform.bus.base import OutgoingMessage
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.envelope import wrap
from minsheng.platform.sql import table_of
from minsheng.runner import build_app
from minsheng.settings import Settings


async def run(rate: float, seconds: float, database_url: str = "", warmup: float = 1.0) -> dict[str, Any]:
    from services.notify import config
    from services.notify.models import Delivery
    from services.notify.state import NOTIFIERS

    with (
        tempfile.TemporaryDirectory() as tmp,
        config.override(
            quiet_start=clock(0, 0), quiet_end=clock(0, 0), rate_per_second={"sms": 10_000.0}, burst={"sms": 10_000}
        ),
    ):
        settings = Settings(mode="embedded", data_dir=Path(tmp), database_url=database_url)
        bus = InProcessBus()
        app = build_app(settings, ["notify"], bus=bus)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtimes["notify"]
            notifier = NOTIFIERS[runtime.db]
            assert notifier.standin is not None
            received = notifier.standin.state.received["sms"]

            async def publish(count: int, prefix: str) -> dict[str, float]:
                """``count`` alerts at ``rate``; phone → event time."""
                sent_at: dict[str, float] = {}
                start = time.perf_counter()
                for n in range(count):
                    due = start + n / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    phone = f"{prefix}{n:08d}"
                    event = AbsenceAlert(
                        alert_id=uuid4(),
                        diner_id=uuid4(),
                        canteen_id=uuid4(),
                        last_meal_on=date(2026, 12, 2),
                        days_absent=3,
                        meals_last_30_days=26,
                        raised_at=datetime.now().astimezone(),
                        family_contacts=[FamilyContact(member_id=uuid4(), phone=phone)],
                    )
                    envelope = wrap(event, service="canteen")
                    sent_at["+86" + phone] = envelope.time.timestamp()
                    payload = envelope.model_dump_json(exclude_none=True).encode()
                    await bus.publish([OutgoingMessage(event.topic, envelope.partitionkey, payload)])
                return sent_at

            # Warm-up, not counted: the first statements compile and prepare, the stand-in's first connections
            # open. The figure is the steady state.
            warm = await publish(int(rate * warmup), "138")
            deadline = time.perf_counter() + 30
            while len(received) < len(warm) and time.perf_counter() < deadline:  # noqa: ASYNC110 - a stand-in's list
                await asyncio.sleep(0.05)
            measured_from = datetime.now().astimezone()
            total = int(rate * seconds)
            sent_at = await publish(total, "139")
            deadline = time.perf_counter() + 30
            while len(received) < len(warm) + total and time.perf_counter() < deadline:  # noqa: ASYNC110 - a stand-in's list
                await asyncio.sleep(0.05)
            latencies = [(r["at"] - sent_at[r["phone"]]) * 1000 for r in received if r["phone"] in sent_at]
            stats = runtime.consumer.stats
            d = table_of(Delivery)
            async with runtime.db.engine.connect() as conn:
                rows = (
                    await conn.execute(sa.select(d.c.created_at, d.c.sent_at).where(d.c.created_at >= measured_from))
                ).all()
            send_lag = sorted((r.sent_at - r.created_at).total_seconds() * 1000 for r in rows if r.sent_at)
    return {
        "figure": "notify event → provider accepted",
        "backend": "postgresql" if database_url else "sqlite",
        "rate_per_second": rate,
        "events": total,
        "warmup_events": len(warm),
        "accepted": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "handler_failures": stats.failures,
        # fan-out committed → accepted: the sender's share
        "send_lag_p50_ms": round(statistics.median(send_lag), 1),
        "send_lag_p99_ms": round(percentile(send_lag, 0.99), 1),
    }


async def run_baseline(rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    from services.notify.channels import TencentSms
    from services.notify.standin import STANDIN_SMS_APP, STANDIN_SMS_ID, STANDIN_SMS_KEY, serve_standin

    async with serve_standin() as standin, httpx.AsyncClient(timeout=5.0) as client:
        adapter = TencentSms(
            client, f"{standin.base_url}/sms", STANDIN_SMS_ID, STANDIN_SMS_KEY, STANDIN_SMS_APP, "民生服务"
        )
        received = standin.state.received["sms"]
        total = int(rate * seconds)
        sent_at: dict[str, float] = {}
        tasks: list[asyncio.Task[Any]] = []
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            phone = f"139{n:08d}"
            sent_at["+86" + phone] = time.time()
            tasks.append(asyncio.create_task(adapter.send(phone, {"template_id": "1900001", "params": ["3"]})))
        outcomes = await asyncio.gather(*tasks)
        latencies = [(r["at"] - sent_at[r["phone"]]) * 1000 for r in received if r["phone"] in sent_at]
    return {
        "figure": "provider call alone (same adapter and stand-in)",
        "rate_per_second": rate,
        "events": total,
        "accepted": len(latencies),
        "failed": sum(1 for o in outcomes if o.kind != "ok"),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of events at the rate first, not counted")
    parser.add_argument("--baseline", action="store_true", help="the provider call alone, same rate")
    args = parser.parse_args()
    result = (
        asyncio.run(run_baseline(args.rate, args.seconds))
        if args.baseline
        else asyncio.run(run(args.rate, args.seconds, args.database_url, args.warmup))
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
