"""The composition root: the only place that knows every service. (The platform imports none of them.)"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import FastAPI

from minsheng import SERVICES
from minsheng.platform.bus.base import EventBus
from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.bus.memory import InProcessBus
from minsheng.platform.service import ServiceSpec
from minsheng.settings import Settings


def load_spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.app").SPEC  # type: ignore[no-any-return]


def make_bus(settings: Settings, client_id: str = "minsheng") -> EventBus:
    if settings.mode == "embedded":
        return InProcessBus()
    return KafkaBus(settings.kafka_bootstrap, client_id=client_id,
                    session_timeout_ms=settings.kafka_session_timeout_ms,
                    fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                    partitions=settings.kafka_topic_partitions,
                    replication_factor=settings.kafka_replication_factor,
                    prefix=settings.kafka_prefix,
                    offset_check_seconds=settings.kafka_offset_check_seconds,
                    idempotent_producer=settings.kafka_idempotent_producer)


def build_app(settings: Settings, services: Sequence[str] = SERVICES, *, demo: bool = False,
              bus: EventBus | None = None, freeze_gc: bool = False) -> FastAPI:
    from minsheng.platform.app import create_root_app

    specs = [load_spec(n) for n in services]
    client_id = "minsheng-" + "-".join(services) if len(services) == 1 else "minsheng"
    return create_root_app(specs, settings, bus or make_bus(settings, client_id), demo=demo, freeze_gc=freeze_gc)
